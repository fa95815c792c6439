"""Headless Chromium for the dashboard's browser tests (tests/test_dashboard.py) and
scripts/dashboard_screenshots.py: selenium driving
Debian's chromium through its chromium-driver, with the flags that keep it off the
network (no background connections, updates or sync) on a machine without one."""

from __future__ import annotations

import shutil
from pathlib import Path

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def installed() -> bool:
    """Whether chromium and chromedriver are on the PATH."""
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def headless_chromium(profile: str | Path, width: int = 1200, height: int = 1800):
    """A selenium Chrome driver of a fresh headless Chromium with its profile in
    `profile` (an empty directory); the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    return driver

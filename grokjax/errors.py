"""Errors grokjax raises for bad input, before any compute starts."""


class ConfigError(ValueError):
    """A configuration value is outside what grokjax allows; the message names the field."""

"""What every config section shares: one-line errors naming the field by its dotted
path, checks, `replace` by dotted paths, and plain-dict round trips.

A section is a frozen keyword-only dataclass that lives beside the code that uses it
(`DataConfig` in `grokjax.problem.data`, `WandConfig` in `grokjax.optim.wand`, ...);
`grokjax.config.Config` composes them. Fields are named by dotted paths
(`optim.wand.force_cap`) everywhere: in `--set`, in `Config.replace` and in errors.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from grokjax.errors import ConfigError


class Section:
    """Behaviour shared by every config section: named errors, checks, replace, dicts.

    A section is a frozen keyword-only dataclass with a `PATH` (its dotted place in
    `Config`); fields whose value is a `Section` are sub-sections.
    """

    PATH: ClassVar[str] = ""
    UNBOUNDED: ClassVar[tuple[str, ...]] = ()  # number fields where inf means "no bound"

    def path_of(self, field: str) -> str:
        """The dotted path of `field`."""
        return f"{self.PATH}.{field}" if self.PATH else field

    def fail(self, field: str, allowed: str, value: Any = dataclasses.MISSING) -> None:
        """Raise the one-line error for `field`: its path, its value and what is allowed."""
        value = getattr(self, field) if value is dataclasses.MISSING else value
        raise ConfigError(f"{self.path_of(field)}={value!r} is not allowed: {allowed}")

    def check_finite(self) -> None:
        """Refuse NaN in any number field, and inf except in `UNBOUNDED` fields."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                continue
            unbounded = f.name in self.UNBOUNDED
            if math.isnan(value) or (math.isinf(value) and not unbounded):
                self.fail(f.name, "a number or inf (no bound)" if unbounded else "a finite number")

    def positive_int(self, *fields: str, minimum: int = 1) -> None:
        for field in fields:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                self.fail(field, "a positive integer" if minimum else "a non-negative integer")

    def one_of(self, field: str, allowed: tuple[str, ...]) -> None:
        if getattr(self, field) not in allowed:
            self.fail(field, f"one of {', '.join(allowed)}")

    def in_range(self, field: str, lo: float, hi: float, text: str, *, hi_open=True) -> None:
        value = getattr(self, field)
        inside = lo <= value < hi if hi_open else lo < value <= hi
        if not inside:
            self.fail(field, text)

    def replace(self, **changes: Any):
        """A copy with `changes`: field names or dotted paths below this section."""
        return _assign(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-like values (tuples as lists), sub-sections as nested dicts."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, record: dict[str, Any]):
        """The section a `to_dict` (or a JSON copy of one) describes; fields it lacks
        take their defaults."""
        return cls().replace(**_flatten(record, cls()))


def _flatten(record: dict[str, Any], section: Section, prefix: str = "") -> dict[str, Any]:
    """{dotted path: value} of a nested record, read against `section`'s sub-sections."""
    out = {}
    subsections = {
        f.name for f in dataclasses.fields(section) if isinstance(getattr(section, f.name), Section)
    }
    for key, value in record.items():
        if key in subsections and isinstance(value, dict):
            out.update(_flatten(value, getattr(section, key), f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = _from_json(value)
    return out


def _from_json(value: Any) -> Any:
    """Undo `checkpoint.json_safe` for config values: "inf"/"-inf" back to floats."""
    if value in ("inf", "-inf"):
        return float(value)
    return tuple(value) if isinstance(value, list) else value


def _assign(section: Section, changes: dict[str, Any]) -> Section:
    """`section` with the fields at the dotted paths (below it) of `changes` set, all at
    once, so that the result is validated once, not after each change."""
    names = {f.name for f in dataclasses.fields(section)}
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if head not in names:
            where = f"{section.PATH}." if section.PATH else ""
            allowed = ", ".join(f"{where}{n}" for n in sorted(names))
            raise ConfigError(f"config field {where}{key!r} is unknown; allowed: {allowed}")
        if rest:
            if not isinstance(getattr(section, head), Section):
                raise ConfigError(f"config field {section.path_of(head)} has no field {rest!r}")
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, below in nested.items():
        direct[head] = direct.get(head, getattr(section, head)).replace(**below)
    return dataclasses.replace(section, **direct)


def parse_value(field: str, text: str, kind: str) -> Any:
    """`text` as a value of the type `kind` (as `field_types` writes it); errors name
    `field` and what is allowed."""
    lowered = text.strip().lower()
    if "None" in kind and lowered in ("none", "null"):
        return None
    try:
        if kind.startswith("bool"):
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if kind.startswith("tuple"):
            return tuple(int(part) for part in text.split(",") if part.strip())
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float") or kind == "Any":
            return float(text)
    except ValueError:
        allowed = "true or false" if kind.startswith("bool") else f"a value of type {kind}"
        raise ConfigError(f"{field}={text!r} is not allowed: {allowed}") from None
    return text.strip()


def split_assignment(item: str) -> tuple[str, str]:
    """'field=value' -> (field, value text); a missing '=' is refused."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r} is not allowed: write field=value")
    field, text = item.split("=", 1)
    return field.strip().replace("-", "_"), text

# tests: tests/core/test_config.py
"""Typed config schema: each section or module option set is a frozen dataclass whose fields
carry their kind (duration, size, rate, networks, bounded number) in metadata; `build(cls,
table, where)` validates a TOML table into one, naming the unknown key or bad value and what
was expected (STYLE §1.7). Durations are numbers of seconds or strings such as "60 s",
"5 min", "2 h", "7 d", or "off" where allowed; sizes are bytes or "256 KiB", "10 MiB".
"""
from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import types
import typing
from dataclasses import field
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ConfigError(Exception):
    """A config problem, phrased for the admin: where, what was found, what was expected."""


_UNITS_TIME = {"ms": 0.001, "s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60,
               "minute": 60, "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600,
               "d": 86400, "day": 86400, "days": 86400}
_UNITS_SIZE = {"b": 1, "bytes": 1, "kib": 1024, "kb": 1000, "mib": 1 << 20, "mb": 10**6,
               "gib": 1 << 30, "gb": 10**9}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_duration(value: object, where: str, *, allow_off: bool = False) -> float | None:
    # `value in ("off", False)` would also take 0 and 0.0 (0 == False) for "off".
    if allow_off and (value == "off" or value is False):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration such as \"60 s\", got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where}: expected a duration of zero or more seconds, "
                              f"got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _QUANTITY.match(value)
        if m and (m.group(2) or "s").lower() in _UNITS_TIME:
            return float(m.group(1)) * _UNITS_TIME[(m.group(2) or "s").lower()]
    off = " or \"off\"" if allow_off else ""
    raise ConfigError(f"{where}: expected a duration such as \"60 s\" or \"5 min\"{off}, "
                      f"got {value!r}")


def parse_size(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = _QUANTITY.match(value)
        if m and (m.group(2) or "b").lower() in _UNITS_SIZE:
            return int(float(m.group(1)) * _UNITS_SIZE[(m.group(2) or "b").lower()])
    raise ConfigError(f"{where}: expected a size such as \"256 KiB\" or \"10 MiB\", got {value!r}")


def parse_rate(value: object, where: str) -> float | None:
    """A rate per second: "256 KiB/s" (bytes), "100/s" (a count), or "off" (None)."""
    if value == "off" or value is False:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 \
            and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and value.rstrip().endswith("/s"):
        amount = value.rstrip()[:-2]
        try:
            n = parse_size(amount, where) if not re.fullmatch(r"\s*[0-9.]+\s*", amount) \
                else float(amount)
        except (ConfigError, ValueError):
            n = 0
        if n > 0:
            return float(n)
    raise ConfigError(f"{where}: expected a rate such as \"256 KiB/s\" or \"100/s\", or "
                      f"\"off\", got {value!r}")


def rate(*, default: str | None) -> Any:
    """A dataclass field holding a rate per second (float), or None for "off"."""
    return field(default=parse_rate(default, "default") if default is not None else None,
                 metadata={"kind": "rate"})


def duration(*, default: float | str | None, minimum: float | None = None,
             allow_off: bool | None = None) -> Any:
    """A dataclass field holding seconds (float), or None for "off" when allowed."""
    off = default is None if allow_off is None else allow_off
    dflt = parse_duration(default, "default", allow_off=True) if default is not None else None
    return field(default=dflt, metadata={"kind": "duration", "minimum": minimum,
                                         "allow_off": off})


def size(*, default: int | str, minimum: int = 0) -> Any:
    """A dataclass field holding bytes (int)."""
    return field(default=parse_size(default, "default"), metadata={"kind": "size",
                                                                  "minimum": minimum})


def number(*, default: int | float, minimum: float | None = None,
           maximum: float | None = None) -> Any:
    return field(default=default, metadata={"minimum": minimum, "maximum": maximum})


def processes(*, default: int) -> Any:
    """A number of processes: an integer >= 1, or "auto" (stored as 0: one per CPU core)."""
    return field(default=default, metadata={"kind": "processes"})


def networks(*, default: tuple[str, ...]) -> Any:
    """A tuple of IP networks ("127.0.0.0/8", "::1")."""
    return field(default=tuple(ipaddress.ip_network(n, strict=False) for n in default),
                 metadata={"kind": "networks"})


def build(cls: type[T], table: object, where: str) -> T:
    """Validate a TOML table into the frozen dataclass `cls`; raises ConfigError."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: "
                          f"{', '.join(sorted(fields)) or 'none'})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required key {name!r}")
            continue
        values[name] = _convert(table[name], hints[name], f.metadata, f"{where}.{name}")
    return cls(**values)


def _convert(value: object, hint: Any, meta: typing.Mapping[str, Any], where: str) -> Any:
    kind = meta.get("kind")
    if kind == "duration":
        seconds = parse_duration(value, where, allow_off=bool(meta.get("allow_off")))
        if seconds is not None and meta.get("minimum") is not None and seconds < meta["minimum"]:
            raise ConfigError(f"{where}: must be at least {meta['minimum']} s, got {value!r}")
        return seconds
    if kind == "rate":
        return parse_rate(value, where)
    if kind == "size":
        n = parse_size(value, where)
        if n < meta.get("minimum", 0):
            raise ConfigError(f"{where}: must be at least {meta['minimum']} bytes, got {value!r}")
        return n
    if kind == "processes":
        if value == "auto":
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
            raise ConfigError(f"{where}: expected \"auto\" or a number from 1 to 256, "
                              f"got {value!r}")
        return value
    if kind == "networks":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of addresses or networks, got {value!r}")
        try:
            return tuple(ipaddress.ip_network(v, strict=False) for v in value)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    origin = get_origin(hint)
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(map(repr, choices))}, "
                              f"got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _convert(value, args[0], meta, where)
    if origin is tuple:
        (item, *_rest) = get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(v, item, {}, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                hint is int and not isinstance(value, int)) or not math.isfinite(value):
            raise ConfigError(f"{where}: expected {'an integer' if hint is int else 'a number'}, "
                              f"got {value!r}")
        lo, hi = meta.get("minimum"), meta.get("maximum")
        if lo is not None and value < lo or hi is not None and value > hi:
            raise ConfigError(f"{where}: must be between {lo} and {hi}, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: cannot read a value of type {hint!r}")  # pragma: no cover


# -- the server's own sections ---------------------------------------------------------------

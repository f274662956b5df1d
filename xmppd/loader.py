# tests: tests/core/test_module.py
"""Finding and ordering modules: `[modules.<name>]` tables → validated options, dependencies
first (ejabberd's gen_mod start order)."""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from xmppd import config as _config
from xmppd.config import ConfigError
from xmppd.module import Module


def module_class(name: str) -> type[Module[Any]]:
    """The Module subclass behind `[modules.<name>]`; ConfigError if there is none."""
    if not name.isidentifier():
        raise ConfigError(f"modules.{name}: not a module name")
    try:
        mod = importlib.import_module(f"modules.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"modules.{name}":
            raise ConfigError(f"modules.{name}: no such module") from None
        raise
    for obj in vars(mod).values():
        if isinstance(obj, type) and issubclass(obj, Module) and obj is not Module \
                and getattr(obj, "name", None) == name:
            return obj
    raise ConfigError(f"modules.{name}: modules/{name}.py defines no module named {name!r}")


def resolve(tables: dict[str, dict[str, Any]]) -> list[tuple[type[Module[Any]], Any]]:
    """Validate every `[modules.*]` table and order the modules so dependencies come first."""
    classes = {name: module_class(name) for name in tables}
    for name, cls in classes.items():
        for dep in cls.depends:
            if dep not in classes:
                raise ConfigError(f"modules.{name}: needs module {dep!r}; add [modules.{dep}]")
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ConfigError(f"modules: dependency cycle {' -> '.join(chain + (name,))}")
        state[name] = 1
        for dep in classes[name].depends:
            visit(dep, chain + (name,))
        state[name] = 2
        order.append(name)
    for name in sorted(classes):
        visit(name, ())
    result = []
    for name in order:
        cls = classes[name]
        opts_cls = cls.Options
        options = _config.build(opts_cls, tables[name], f"modules.{name}") \
            if dataclasses.is_dataclass(opts_cls) else None
        result.append((cls, options))
    return result

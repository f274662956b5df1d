# tests: tests/modules/test_muc_config.py, tests/modules/test_muc_mam.py
"""XEP-0004 data forms, the little the MUC service needs: build a form (or a result), read a
submitted one, and read typed values out of it with the right error for bad input."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from stanzas import ns
from stanzas.errors import StanzaError

_X = "{%s}" % ns.DATA_FORMS
_E = etree._Element


@dataclass(frozen=True, slots=True)
class Field:
    var: str | None                         # None: a 'fixed' field
    type: str = "text-single"
    label: str = ""
    values: Sequence[str] = ()
    options: Sequence[tuple[str, str]] = ()  # (label, value)


@dataclass(frozen=True, slots=True)
class Submitted:
    """A submitted form (type 'submit') as var -> values; `form_type` is FORM_TYPE's value."""
    form_type: str | None
    values: Mapping[str, list[str]] = field(default_factory=dict)

    def has(self, var: str) -> bool:
        return var in self.values

    def text(self, var: str, default: str = "") -> str:
        vals = self.values.get(var)
        return "\n".join(vals) if vals else default

    def boolean(self, var: str, default: bool) -> bool:
        """XEP-0004 §3.3 boolean: "0"/"false" or "1"/"true"; anything else is bad-request."""
        vals = self.values.get(var)
        if not vals:
            return default
        v = vals[0].strip().lower()
        if v in ("1", "true"):
            return True
        if v in ("0", "false"):
            return False
        raise StanzaError.bad_request(f"{var}: expected a boolean, got {vals[0]!r}")

    def integer(self, var: str, default: int | None) -> int | None:
        vals = self.values.get(var)
        if not vals or not vals[0].strip():
            return default
        try:
            return int(vals[0].strip())
        except ValueError:
            raise StanzaError.bad_request(f"{var}: expected a number, got {vals[0]!r}") from None

    def choice(self, var: str, default: str, allowed: Iterable[str]) -> str:
        vals = self.values.get(var)
        if not vals:
            return default
        if vals[0] not in allowed:
            raise StanzaError.not_acceptable(f"{var}: {vals[0]!r} is not an option")
        return vals[0]

    def choices(self, var: str, default: tuple[str, ...], allowed: Iterable[str]
                ) -> tuple[str, ...]:
        if var not in self.values:
            return default
        known = tuple(allowed)
        vals = self.values[var]
        bad = [v for v in vals if v not in known]
        if bad:
            raise StanzaError.not_acceptable(f"{var}: {bad[0]!r} is not an option")
        return tuple(v for v in known if v in vals)


def build(type: str, fields: Iterable[Field], *, form_type: str | None = None,
          title: str = "", instructions: str = "") -> _E:
    """A <x xmlns='jabber:x:data'/> of `type` ('form' or 'result')."""
    x = etree.Element(_X + "x", nsmap={None: ns.DATA_FORMS}, type=type)  # type: ignore[dict-item]
    if title:
        etree.SubElement(x, _X + "title").text = title
    if instructions:
        etree.SubElement(x, _X + "instructions").text = instructions
    if form_type is not None:
        f = etree.SubElement(x, _X + "field", var="FORM_TYPE", type="hidden")
        etree.SubElement(f, _X + "value").text = form_type
    for spec in fields:
        f = etree.SubElement(x, _X + "field", type=spec.type)
        if spec.var is not None:
            f.set("var", spec.var)
        if spec.label:
            f.set("label", spec.label)
        for v in spec.values:
            etree.SubElement(f, _X + "value").text = v
        for label, value in spec.options:
            o = etree.SubElement(f, _X + "option", label=label)
            etree.SubElement(o, _X + "value").text = value
    return x


def find(parent: _E) -> _E | None:
    return parent.find(_X + "x")


def parse_submit(x: _E) -> Submitted:
    """Read a submitted form; bad-request unless its type is 'submit' (XEP-0004 §3.1)."""
    if x.get("type") != "submit":
        raise StanzaError.bad_request("expected a form of type 'submit'")
    values: dict[str, list[str]] = {}
    form_type = None
    for f in x.iterfind(_X + "field"):
        var = f.get("var")
        if not var:
            continue
        vals = [v.text or "" for v in f.iterfind(_X + "value")]
        if var == "FORM_TYPE":
            form_type = vals[0] if vals else ""
            continue
        values[var] = vals
    return Submitted(form_type, values)


def boolean(value: bool) -> str:
    return "1" if value else "0"

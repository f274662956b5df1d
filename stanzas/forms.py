# tests: tests/core/test_forms.py
"""XEP-0004 data forms, with XEP-0122 validation: build a form (or a result), read a submitted
one, and read typed values out of it with the right error for bad input.

- `build(type, fields, form_type=)` makes <x xmlns='jabber:x:data'/>; a FORM_TYPE goes first
  as a hidden field (XEP-0068). `Field.validate` adds XEP-0122 <validate/> (e.g. the open
  list of XEP-0313 'ids').
- `parse_submit(x, form_type=)` reads a submitted form (XEP-0004 §3.1: type 'submit'; a form
  without a type is read as one) into `Submitted`: var -> values in document order, FORM_TYPE
  apart. <bad-request/> for another type, a field given twice (§3.2: 'var' "uniquely
  identifies the field") or, with `form_type`, a FORM_TYPE that is not it.
- `Submitted` reads one value as text, boolean (§3.3: "0"/"false", "1"/"true"), integer or
  choice; a bad value is <bad-request/>, a value that is not an option <not-acceptable/>.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from stanzas import ns
from stanzas.errors import StanzaError

_X = "{%s}" % ns.DATA_FORMS
_V = "{%s}" % ns.XDATA_VALIDATE
_E = etree._Element
X = _X + "x"


@dataclass(frozen=True, slots=True)
class Validate:
    """XEP-0122 §3: the datatype of a field's values, and how they are validated: "basic"
    (against the datatype), "open" (a list-* field may take values that are not options)."""
    datatype: str = "xs:string"
    method: str = "basic"


@dataclass(frozen=True, slots=True)
class Field:
    var: str | None                         # None: a 'fixed' field
    type: str | None = "text-single"        # None: no 'type' attribute (text-single, §3.3)
    label: str = ""
    values: Sequence[str] = ()
    options: Sequence[tuple[str, str]] = ()  # (label, value); label "" for none
    validate: Validate | None = None


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

    def one(self, var: str) -> str:
        """The one non-empty value of `var` (whitespace around it removed); bad-request if
        the field has none or several."""
        vals = [v.strip() for v in self.values.get(var, ())]
        if len(vals) != 1 or not vals[0]:
            raise StanzaError.bad_request(f"field {var!r} takes one value")
        return vals[0]

    def strings(self, var: str) -> tuple[str, ...]:
        """The non-empty values of `var`, whitespace around them removed."""
        return tuple(s for s in (v.strip() for v in self.values.get(var, ())) if s)

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
    x = etree.Element(X, nsmap={None: ns.DATA_FORMS}, type=type)  # type: ignore[dict-item]
    if title:
        etree.SubElement(x, _X + "title").text = title
    if instructions:
        etree.SubElement(x, _X + "instructions").text = instructions
    if form_type is not None:
        f = etree.SubElement(x, _X + "field", var="FORM_TYPE", type="hidden")
        etree.SubElement(f, _X + "value").text = form_type
    for spec in fields:
        f = etree.SubElement(x, _X + "field")
        if spec.var is not None:
            f.set("var", spec.var)
        if spec.type is not None:
            f.set("type", spec.type)
        if spec.label:
            f.set("label", spec.label)
        for v in spec.values:
            etree.SubElement(f, _X + "value").text = v
        for label, value in spec.options:
            o = etree.SubElement(f, _X + "option")
            if label:
                o.set("label", label)
            etree.SubElement(o, _X + "value").text = value
        if spec.validate is not None:
            check = etree.SubElement(f, _V + "validate", nsmap={None: ns.XDATA_VALIDATE},  # type: ignore[dict-item]
                                     datatype=spec.validate.datatype)
            etree.SubElement(check, _V + spec.validate.method)
    return x


def find(parent: _E) -> _E | None:
    """The data form child of `parent`, or None."""
    return parent.find(X)


def parse_submit(x: _E, form_type: str | None = None) -> Submitted:
    """Read a submitted form (module docstring).

    Raises:
        StanzaError: bad-request for another form type, a field given twice or, with
            `form_type`, a FORM_TYPE other than it (one without FORM_TYPE is accepted).
    """
    if x.tag != X:
        raise StanzaError.bad_request("expected a jabber:x:data form")
    if x.get("type", "submit") != "submit":
        raise StanzaError.bad_request("expected a form of type 'submit'")
    values: dict[str, list[str]] = {}
    found_type: list[str] | None = None
    for f in x.iterfind(_X + "field"):
        var = f.get("var")
        if not var:
            continue
        if var in values or (var == "FORM_TYPE" and found_type is not None):
            raise StanzaError.bad_request(f"field {var} appears twice")
        vals = [v.text or "" for v in f.iterfind(_X + "value")]
        if var == "FORM_TYPE":
            found_type = vals
        else:
            values[var] = vals
    if form_type is not None and found_type is not None and \
            [v.strip() for v in found_type] != [form_type]:
        raise StanzaError.bad_request(f"FORM_TYPE must be {form_type}")
    return Submitted(None if found_type is None else (found_type[0] if found_type else ""),
                     values)


def boolean(value: bool) -> str:
    return "1" if value else "0"

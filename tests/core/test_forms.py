# tests: stanzas/forms.py
"""XEP-0004 data forms and XEP-0122 validation (stanzas/forms.py): what is built, how a
submitted form is read, and the errors for bad input."""
from __future__ import annotations

import pytest
from lxml import etree

from stanzas import forms
from stanzas.errors import StanzaError
from tests.harness.match import parse

X = "{jabber:x:data}"


def submitted(fields: str, type: str | None = "submit") -> etree._Element:
    t = f" type='{type}'" if type is not None else ""
    return parse(f"<x xmlns='jabber:x:data'{t}>{fields}</x>")


def field(var: str, *values: str) -> str:
    return f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"


def test_build_form_with_options_and_validation() -> None:
    x = forms.build("form", [
        forms.Field("muc#roomconfig_whois", "list-single", "Who may see JIDs", ["moderators"],
                    [("Moderators", "moderators"), ("", "anyone")]),
        forms.Field("ids", "list-multi", validate=forms.Validate(method="open")),
        forms.Field(None, "fixed", values=["A note"]),
        forms.Field("size", None, values=["10"])],
        form_type="urn:example", title="Title", instructions="Fill it in")
    assert x.tag == X + "x" and x.get("type") == "form"
    assert [c.tag for c in x][:2] == [X + "title", X + "instructions"]
    ft, whois, ids, fixed, size = x.findall(X + "field")
    assert (ft.get("var"), ft.get("type"), ft.findtext(X + "value")) == \
        ("FORM_TYPE", "hidden", "urn:example")
    assert whois.get("label") == "Who may see JIDs"
    assert [(o.get("label"), o.findtext(X + "value")) for o in whois.findall(X + "option")] \
        == [("Moderators", "moderators"), (None, "anyone")]
    v = ids.find("{http://jabber.org/protocol/xdata-validate}validate")
    assert v is not None and v.get("datatype") == "xs:string"
    assert [c.tag for c in v] == ["{http://jabber.org/protocol/xdata-validate}open"]
    assert fixed.get("var") is None and fixed.get("type") == "fixed"
    assert size.get("type") is None                                 # §3.3: text-single


def test_parse_submit_reads_values_in_order() -> None:
    form = forms.parse_submit(submitted(
        field("FORM_TYPE", "urn:example") + field("b", "1") + field("a", "x", "y") +
        "<field type='fixed'><value>ignored</value></field>"), "urn:example")
    assert form.form_type == "urn:example"
    assert list(form.values) == ["b", "a"] and form.values["a"] == ["x", "y"]
    assert form.has("a") and not form.has("FORM_TYPE")
    assert form.text("a") == "x\ny" and form.text("missing", "d") == "d"
    assert form.boolean("b", False) is True and form.integer("b", None) == 1
    assert forms.parse_submit(submitted(field("a", "1"), type=None)).values == {"a": ["1"]}


@pytest.mark.parametrize("x, condition", [
    ("<x xmlns='jabber:x:data' type='form'/>", "bad-request"),             # §3.1
    ("<x xmlns='jabber:x:data' type='cancel'/>", "bad-request"),
    ("<x xmlns='urn:other' type='submit'/>", "bad-request"),
    (f"<x xmlns='jabber:x:data' type='submit'>{field('a', '1')}{field('a', '2')}</x>",
     "bad-request"),                                                      # §3.2: unique vars
    (f"<x xmlns='jabber:x:data' type='submit'>{field('FORM_TYPE', 'urn:other')}</x>",
     "bad-request"),
])
def test_parse_submit_errors(x: str, condition: str) -> None:
    with pytest.raises(StanzaError) as e:
        forms.parse_submit(parse(x), "urn:example")
    assert e.value.condition == condition


def test_form_type_is_optional_when_expected() -> None:
    assert forms.parse_submit(submitted(field("a", "1")), "urn:example").form_type is None
    assert forms.parse_submit(submitted(field("FORM_TYPE", " urn:example ")),
                              "urn:example").form_type == " urn:example "


def test_typed_values_and_their_errors() -> None:
    form = forms.parse_submit(submitted(
        field("flag", "maybe") + field("n", "x") + field("pick", "c") + field("many", "a", "c") +
        field("one", " v ") + field("two", "v", "w") + field("empty", " ") +
        field("list", " a ", "", "b")))
    for read, condition in [
            (lambda: form.boolean("flag", False), "bad-request"),
            (lambda: form.integer("n", 0), "bad-request"),
            (lambda: form.choice("pick", "a", ["a", "b"]), "not-acceptable"),
            (lambda: form.choices("many", (), ["a", "b"]), "not-acceptable"),
            (lambda: form.one("two"), "bad-request"),
            (lambda: form.one("empty"), "bad-request"),
            (lambda: form.one("missing"), "bad-request")]:
        with pytest.raises(StanzaError) as e:
            read()
        assert e.value.condition == condition
    assert form.one("one") == "v"
    assert form.strings("list") == ("a", "b") and form.strings("missing") == ()
    assert form.choice("missing", "a", ["a"]) == "a"
    assert form.choices("missing", ("a",), ["a", "b"]) == ("a",)
    assert forms.boolean(True) == "1" and forms.boolean(False) == "0"

# tests: stanzas/rsm.py
"""XEP-0059 Result Set Management (stanzas/rsm.py): the request read with its errors, the
answer's <set/>, and paging an in-memory list."""
from __future__ import annotations

import pytest

from stanzas import rsm
from stanzas.errors import StanzaError
from tests.harness.match import parse

RSM = "http://jabber.org/protocol/rsm"


def query(inner: str | None) -> str:
    s = "" if inner is None else f"<set xmlns='{RSM}'>{inner}</set>"
    return f"<query xmlns='urn:example'>{s}</query>"


def req(inner: str | None) -> rsm.Request | None:
    return rsm.parse(parse(query(inner)))


def test_no_set_is_no_request() -> None:
    assert req(None) is None
    assert req("") == rsm.Request()


@pytest.mark.parametrize("inner, expected", [
    ("<max>10</max>", rsm.Request(max=10)),
    ("<max> 0 </max>", rsm.Request(max=0)),
    ("<max>5</max><after>u1</after>", rsm.Request(max=5, after="u1")),
    ("<before/>", rsm.Request(before="")),                              # §2.5: the last page
    ("<before> u9 </before><max>2</max>", rsm.Request(max=2, before="u9")),
    ("<index>371</index><max>10</max>", rsm.Request(max=10, index=371)),  # §2.4
])
def test_request_values(inner: str, expected: rsm.Request) -> None:
    assert req(inner) == expected


@pytest.mark.parametrize("inner", [
    "<max>ten</max>", "<max>-1</max>", "<max>+3</max>", "<max/>", "<max>²</max>",
    "<index>-5</index>", "<index>x</index>", "<after/>", "<after>  </after>",
])
def test_bad_requests(inner: str) -> None:
    with pytest.raises(StanzaError) as e:
        req(inner)
    assert e.value.condition == "bad-request"


def test_limit_defaults_and_caps() -> None:
    assert rsm.Request().limit(50) == 50
    assert rsm.Request(max=500).limit(50, ceiling=100) == 100
    assert rsm.Request(max=0).limit(50, ceiling=100) == 0


def test_answer_with_and_without_items() -> None:
    s = rsm.answer(first="a", last="c", first_index=10, count=20)
    assert s.tag == "{%s}set" % RSM
    assert [(c.tag.split("}")[1], c.text, c.get("index")) for c in s] == [
        ("first", "a", "10"), ("last", "c", None), ("count", "20", None)]
    empty = rsm.answer(parse("<fin xmlns='urn:xmpp:mam:2'/>"), count=0)
    assert empty.getparent() is not None
    assert [c.tag for c in empty] == ["{%s}count" % RSM]     # §2.1: no first/last
    assert rsm.answer(first="a", last="a")[0].get("index") is None


UIDS = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("inner, window", [
    (None, (0, 5)),
    ("<max>2</max>", (0, 2)),
    ("<max>2</max><after>b</after>", (2, 4)),
    ("<max>2</max><after>e</after>", (5, 5)),
    ("<max>2</max><before/>", (3, 5)),
    ("<max>2</max><before>b</before>", (0, 1)),
    ("<max>2</max><index>3</index>", (3, 5)),
    ("<index>9</index>", (5, 5)),             # §2.4: past the end, an empty page
    ("<max>0</max>", (0, 0)),                 # §2.7: only the count
])
def test_window(inner: str | None, window: tuple[int, int]) -> None:
    assert rsm.window(UIDS, req(inner)) == window


def test_window_default_page_and_unknown_uid() -> None:
    assert rsm.window(UIDS, rsm.Request(), default=3) == (0, 3)
    for inner in ("<after>zz</after>", "<before>zz</before>"):
        with pytest.raises(StanzaError) as e:
            rsm.window(UIDS, req(inner))
        assert e.value.condition == "item-not-found"                  # §2.6

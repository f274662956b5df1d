# tests: modules/mam/
"""XEP-0313 MAM on the in-memory harness: what is archived and stamped, queries, paging, errors,
preferences, metadata, retention."""
from __future__ import annotations

from typing import Any, Callable

import pytest
from lxml import etree

from stanzas.delay import stamp_us
from tests.harness.server import HarnessClient, Harness
from tests.modules.contacts import make_contacts
from tests.modules.messaging import messaging, module

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
NS = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
SID = "{urn:xmpp:sid:0}stanza-id"
ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return messaging(make_harness)


def form(**fields: Any) -> str:
    out = [f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
           f"<value>{NS}</value></field>"]
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        out.append(f"<field var='{var.replace('_', '-')}'>"
                   + "".join(f"<value>{v}</value>" for v in values) + "</field>")
    return "".join(out) + "</x>"


def rsm(**items: Any) -> str:
    return f"<set xmlns='{RSM}'>" + "".join(
        f"<{k}/>" if v == "" else f"<{k}>{v}</{k}>" for k, v in items.items()) + "</set>"


def query(s: HarnessClient, inner: str = "", qid: str = "q1",
          extra: str = "") -> tuple[list[etree._Element], etree._Element]:
    """Run a query; (the forwarded messages, the IQ answer)."""
    s.received()
    s.send(f"<iq type='set' id='{qid}'><query xmlns='{NS}' queryid='{qid}'>{inner}{extra}"
           "</query></iq>")
    got = s.received()
    answer = got.pop()
    assert answer.tag == "{jabber:client}iq", etree.tostring(answer)
    for m in got:
        result = m.find(f"{{{NS}}}result")
        assert result is not None and result.get("queryid") == qid
        assert m.get("from") == str(s.jid.bare) and m.get("to") == str(s.jid)
    return got, answer


def bodies(results: list[etree._Element]) -> list[str | None]:
    return [r.findtext(".//{jabber:client}body") for r in results]


def uid(r: etree._Element) -> str:
    found = r.find(f"{{{NS}}}result")
    assert found is not None
    return found.get("id") or ""


def fin(answer: etree._Element) -> etree._Element:
    found = answer.find(f"{{{NS}}}fin")
    assert found is not None, etree.tostring(answer)
    return found


def error(answer: etree._Element) -> str:
    assert answer.get("type") == "error", etree.tostring(answer)
    return [etree.QName(c).localname for c in answer.find("{jabber:client}error")
            if etree.QName(c).namespace == ERR and etree.QName(c).localname != "text"][0]


def chat(h: Harness, n: int, start: int = 0) -> tuple[HarnessClient, HarnessClient]:
    """Alice and bob online; alice sends n messages, bob answers every third."""
    a, b = h.login(f"{ALICE}/a"), h.login(f"{BOB}/b")
    for i in range(start, start + n):
        if i % 3 == 2:
            b.send(f"<message to='{ALICE}/a' type='chat'><body>{i}</body></message>")
        else:
            a.send(f"<message to='{BOB}/b' type='chat'><body>{i}</body></message>")
        h.clock.advance(1)
    a.received()
    b.received()
    return a, b


def test_a_received_message_is_archived_and_stamped_for_the_recipient_only(h: Harness) -> None:
    a, b = h.login(f"{ALICE}/a"), h.login(f"{BOB}/b")
    b.received()
    a.send(f"<message to='{BOB}/b' type='chat' id='m1'><body>hi</body></message>")
    got = b.received()[0]
    sids = got.findall(SID)
    assert [s.get("by") for s in sids] == [BOB]             # not alice's (§3.5)
    results, answer = query(b)
    assert bodies(results) == ["hi"] and uid(results[0]) == sids[0].get("id")
    delay = results[0].find(".//{urn:xmpp:delay}delay")
    now = int(h.clock.seconds() * 1e6)          # the sender's copy took `now`, then +1 µs
    assert delay is not None and delay.get("stamp") == stamp_us(now + 1)
    results, _ = query(a)
    assert bodies(results) == ["hi"]                        # the sender's archive too
    for feature in (NS, f"{NS}#extended", "urn:xmpp:sid:0"):
        assert feature in h.server.hosts["example.org"].features["account"]


def test_stanza_ids_claiming_our_jids_are_removed(h: Harness) -> None:
    a, b = h.login(f"{ALICE}/a"), h.login(f"{BOB}/b")
    b.received()
    a.send(f"<message to='{BOB}/b' type='chat'><body>x</body>"
           f"<stanza-id xmlns='urn:xmpp:sid:0' by='{BOB}' id='forged'/>"
           "<stanza-id xmlns='urn:xmpp:sid:0' by='example.org' id='forged2'/>"
           "<stanza-id xmlns='urn:xmpp:sid:0' by='room@elsewhere.example' id='kept'/>"
           f"<result xmlns='{NS}' id='fake'/></message>")
    got = b.received()[0]
    assert sorted(s.get("id") != "forged" and s.get("by") for s in got.findall(SID)) == \
        sorted([BOB, "room@elsewhere.example"])
    assert got.find(f"{{{NS}}}result") is None


@pytest.mark.parametrize("message, archived", [
    ("<message type='chat'><body>yes</body></message>", True),
    ("<message><body>normal</body></message>", True),
    ("<message><received xmlns='urn:xmpp:receipts' id='x'/></message>", True),
    ("<message type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>", True),
    ("<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
     False),
    ("<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/>"
     "<store xmlns='urn:xmpp:hints'/></message>", True),
    ("<message type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/>"
     "</message>", False),
    ("<message type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>", False),
    ("<message type='headline'><body>x</body></message>", False),
], ids=lambda v: str(v)[:50])
def test_what_is_archived(h: Harness, message: str, archived: bool) -> None:
    a, b = h.login(f"{ALICE}/a"), h.login(f"{BOB}/b")
    a.send(message.replace("<message", f"<message to='{BOB}/b'", 1))
    results, _ = query(b)
    assert len(results) == (1 if archived else 0)
    assert len(query(a)[0]) == (1 if archived else 0)


def test_an_offline_recipient_gets_the_stamped_message_from_storage(h: Harness) -> None:
    h.user(BOB)
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}' type='chat'><body>later</body></message>")
    b = h.login(f"{BOB}/b", available=False)
    b.send("<presence/>")
    msg = [e for e in b.received() if e.tag.endswith("message")][0]
    sid = msg.find(SID)
    assert sid is not None
    results, _ = query(b)
    assert [uid(r) for r in results] == [sid.get("id")]


def test_the_whole_archive_in_order_with_fin(h: Harness) -> None:
    a, _ = chat(h, 5)
    results, answer = query(a)
    assert bodies(results) == ["0", "1", "2", "3", "4"]
    f = fin(answer)
    assert f.get("complete") == "true"
    s = f.find(f"{{{RSM}}}set")
    assert s is not None
    assert s.findtext(f"{{{RSM}}}first") == uid(results[0])
    assert s.findtext(f"{{{RSM}}}last") == uid(results[-1])
    assert s.findtext(f"{{{RSM}}}count") == "5"


def test_paging_forward_and_backward(h: Harness) -> None:
    a, _ = chat(h, 7)
    p1, ans = query(a, rsm(max=3))
    assert bodies(p1) == ["0", "1", "2"] and fin(ans).get("complete") is None
    p2, ans = query(a, rsm(max=3, after=uid(p1[-1])))
    assert bodies(p2) == ["3", "4", "5"] and fin(ans).get("complete") is None
    p3, ans = query(a, rsm(max=3, after=uid(p2[-1])))
    assert bodies(p3) == ["6"] and fin(ans).get("complete") == "true"
    last, ans = query(a, rsm(max=3, before=""))
    assert bodies(last) == ["4", "5", "6"] and fin(ans).get("complete") is None
    prev, ans = query(a, rsm(max=3, before=uid(last[0])))
    assert bodies(prev) == ["1", "2", "3"]
    first, ans = query(a, rsm(max=3, before=uid(prev[0])))
    assert bodies(first) == ["0"] and fin(ans).get("complete") == "true"
    flipped, ans = query(a, rsm(max=3, before=""), extra="<flip-page/>")
    assert bodies(flipped) == ["6", "5", "4"]
    s = fin(ans).find(f"{{{RSM}}}set")
    assert s is not None and s.findtext(f"{{{RSM}}}first") == uid(flipped[-1])
    counted, ans = query(a, rsm(max=0))
    assert counted == [] and fin(ans).findtext(f".//{{{RSM}}}count") == "7"
    by_index, _ = query(a, rsm(max=2, index=5))
    assert bodies(by_index) == ["5", "6"]


def test_the_page_size_is_capped(make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness, mam={"max_page": 2})
    a, _ = chat(h, 3)
    results, ans = query(a, rsm(max=10))
    assert bodies(results) == ["0", "1"] and fin(ans).get("complete") is None


def test_filters_with_time_and_ids(h: Harness) -> None:
    a, _ = chat(h, 6)
    carol = h.login(f"{CAROL}/c")
    carol.send(f"<message to='{ALICE}/a' type='chat'><body>from carol</body></message>")
    everything, _ = query(a)
    ids = [uid(r) for r in everything]
    assert bodies(query(a, form(**{"with": CAROL}))[0]) == ["from carol"]
    assert bodies(query(a, form(**{"with": f"{BOB}/b"}))[0]) == ["0", "1", "2", "3", "4", "5"]
    assert query(a, form(**{"with": f"{BOB}/other"}))[0] == []
    stamps = [r.find(".//{urn:xmpp:delay}delay").get("stamp") for r in everything]  # type: ignore[union-attr]
    assert bodies(query(a, form(start=stamps[2], end=stamps[4]))[0]) == ["2", "3", "4"]
    assert bodies(query(a, form(after_id=ids[1], before_id=ids[4]))[0]) == ["2", "3"]
    assert bodies(query(a, form(ids=[ids[5], ids[0]]))[0]) == ["0", "5"]


@pytest.mark.parametrize("inner, condition", [
    (form(after_id="nope"), "item-not-found"),
    (form(before_id="nope"), "item-not-found"),
    (form(ids=["nope"]), "item-not-found"),
    (rsm(after="nope"), "item-not-found"),
    (rsm(before="nope"), "item-not-found"),
    (form(**{"{urn:example}fulltext": "x"}), "feature-not-implemented"),
    (form(start="yesterday"), "bad-request"),
    (form(**{"with": "a@@b"}), "jid-malformed"),
    (form(start=["2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"]), "bad-request"),
    ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value>"
     "</field></x>", "bad-request"),
    (rsm(max="ten"), "bad-request"),
    (rsm(after=""), "bad-request"),
], ids=lambda v: str(v)[-60:])
def test_bad_queries(h: Harness, inner: str, condition: str) -> None:
    a, _ = chat(h, 2)
    results, answer = query(a, inner)
    assert results == [] and error(answer) == condition


def test_someone_elses_archive_is_forbidden(h: Harness) -> None:
    a = h.login(f"{ALICE}/a")
    h.user(BOB)
    for kind, payload in (("set", "query"), ("get", "prefs"), ("get", "metadata")):
        a.send(f"<iq type='{kind}' id='x' to='{BOB}'><{payload} xmlns='{NS}'/></iq>")
        assert error(a.received()[0]) == "forbidden"


def test_form_and_metadata(h: Harness) -> None:
    a = h.login(f"{ALICE}/a")
    a.send(f"<iq type='get' id='m'><metadata xmlns='{NS}'/></iq>")
    a.expect(f"<iq type='result' id='m' to='{ALICE}/a' from='{ALICE}'>"
             f"<metadata xmlns='{NS}'/></iq>")
    a.send(f"<iq type='get' id='f'><query xmlns='{NS}'/></iq>")
    vars_ = [f.get("var") for f in a.received()[0].iter("{jabber:x:data}field")]
    assert vars_ == ["FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"]
    a, _ = chat(h, 3)
    everything, _ = query(a)
    a.send(f"<iq type='get' id='m2'><metadata xmlns='{NS}'/></iq>")
    md = a.received()[0].find(f"{{{NS}}}metadata")
    assert md is not None
    assert [e.get("id") for e in md] == [uid(everything[0]), uid(everything[-1])]


def set_prefs(s: HarnessClient, default: str, always: tuple[str, ...] = (),
              never: tuple[str, ...] = ()) -> etree._Element:
    lists = "".join(f"<{n}>" + "".join(f"<jid>{j}</jid>" for j in js) + f"</{n}>"
                    for n, js in (("always", always), ("never", never)))
    s.received()
    s.send(f"<iq type='set' id='p'><prefs xmlns='{NS}' default='{default}'>{lists}</prefs></iq>")
    return s.received()[0]


def test_preferences(h: Harness) -> None:
    make_contacts(h, ALICE, BOB)
    a = h.login(f"{ALICE}/a")
    a.send(f"<iq type='get' id='g'><prefs xmlns='{NS}'/></iq>")
    a.expect(f"<iq type='result' id='g' to='{ALICE}/a' from='{ALICE}'><prefs xmlns='{NS}' "
             "default='always'><always/><never/></prefs></iq>")
    answer = set_prefs(a, "roster", always=(f"{CAROL}",), never=(f"{BOB}/spam",))
    assert answer.get("type") == "result"
    b, c, d = h.login(f"{BOB}/b"), h.login(f"{CAROL}/c"), h.login("dave@example.org/d")
    b.send(f"<message to='{ALICE}/a' type='chat'><body>contact</body></message>")
    c.send(f"<message to='{ALICE}/a' type='chat'><body>always</body></message>")
    d.send(f"<message to='{ALICE}/a' type='chat'><body>stranger</body></message>")
    spam = h.login(f"{BOB}/spam")
    spam.send(f"<message to='{ALICE}/a' type='chat'><body>never</body></message>")
    assert bodies(query(a)[0]) == ["contact", "always"]
    set_prefs(a, "never")
    b.send(f"<message to='{ALICE}/a' type='chat'><body>not kept</body></message>")
    assert bodies(query(a)[0]) == ["contact", "always"]
    assert error(set_prefs(a, "sometimes")) == "bad-request"
    assert error(set_prefs(a, "always", always=("a@@b",))) == "jid-malformed"


def test_preferences_of_an_offline_user_apply(h: Harness) -> None:
    b = h.login(f"{BOB}/b")
    set_prefs(b, "never")
    b.close()
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}' type='chat'><body>x</body></message>")
    b = h.login(f"{BOB}/b2", available=False)
    assert query(b)[0] == []


def test_retention_drops_the_oldest(make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness, mam={"retention": "2 h"})
    a, _ = chat(h, 2)
    h.clock.advance(3600)
    a, _ = chat(h, 1, start=9)
    h.clock.advance(3600 + 60)                              # the hourly purge runs
    assert bodies(query(a)[0]) == ["9"]


def test_writes_are_grouped(h: Harness) -> None:
    from tests.modules.messaging import Gate
    writes = module(h, "mam").writes
    gate = Gate(writes)
    a, b = h.login(f"{ALICE}/a"), h.login(f"{BOB}/b")
    for i in range(5):
        a.send(f"<message to='{BOB}/b' type='chat'><body>{i}</body></message>")
    assert len(b.received()) >= 5                           # delivered before any commit
    assert [len(items) for items, _ in gate.pending] == [1]  # alice's first; the rest waits
    gate.open()
    assert [len(items) for items, _ in gate.pending] == [9]  # in one transaction
    gate.open()
    gate.close_gate()
    assert len(query(b)[0]) == 5


# -- resends after a restart (issue 13 §6, DESIGN.md "Restart or crash") ----------------------

def origin_message(to: str, origin: str, body: str) -> str:
    return (f"<message to='{to}' type='chat' id='{origin}'><body>{body}</body>"
            f"<origin-id xmlns='urn:xmpp:sid:0' id='{origin}'/></message>")


def test_a_message_sent_again_after_logging_in_again_is_not_delivered_twice(h: Harness) -> None:
    alice, bob = h.login(f"{ALICE}/phone"), h.login(f"{BOB}/pc")
    alice.send(origin_message(BOB, "o-1", "once"))
    assert [e.findtext("{jabber:client}body") for e in bob.received()] == ["once"]
    alice.drop()                                   # the ack was lost with the server...
    h.clock.advance(30)
    again = h.login(f"{ALICE}/phone")              # ...so the client sends it again
    again.send(origin_message(BOB, "o-1", "once"))
    again.send(origin_message(BOB, "o-2", "new"))
    assert [e.findtext("{jabber:client}body") for e in bob.received()] == ["new"]
    again.expect_nothing()                         # no error: it was handled the first time


def test_after_the_window_the_same_origin_id_is_a_new_message(h: Harness) -> None:
    alice, bob = h.login(f"{ALICE}/phone"), h.login(f"{BOB}/pc")
    alice.send(origin_message(BOB, "o-1", "first"))
    h.clock.advance(301)                           # past dedup_window ("5 min"): no look-up
    alice.send(origin_message(BOB, "o-1", "second"))
    assert [e.findtext("{jabber:client}body") for e in bob.received()] == ["first", "second"]

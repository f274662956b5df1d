# tests: tests/core/test_fuzz_parser.py, tests/core/test_fuzz_c2s.py, tests/core/test_fuzz_atheris.py
"""Fuzz targets shared by the hypothesis tests and the atheris scripts (tests/fuzz/*.py).

- `parse_outcome(data, cuts)`: the stream parser fed `data` cut at `cuts`; what came out
  (stanzas re-serialised, header attributes, the close) and the error condition. The parser's
  promise (xmppd/xmlstream.py): only StreamError ever comes out of it, and every split of the
  same bytes gives the same events and the same error.
- `drive_c2s(data, cuts)`: a client-to-server negotiation (xmppd/c2s.py) fed `data`, with the
  shell's answers (credentials of one account, binding) given at once; checks what must hold
  whatever the client sends: no exception, no output or event after the close, the server's
  output a well-formed stream, stanzas only once bound, authentication only with the
  account's password.
The regression corpus (tests/fuzz/corpus/) holds the attacks of issue 13 and of the bad-input
tests; every file is run through both targets in `make test`.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from lxml import etree

from stanzas.errors import StreamError
from xmppd import c2s
from xmppd.sasl import derive_all
from xmppd.xmlstream import StreamClose, StreamOpen, XmlStreamParser, serialize

CORPUS = Path(__file__).parent / "corpus"
HOST = "example.org"
PASSWORD = "correct horse"
ACCOUNTS = {"juliet": derive_all(PASSWORD, iterations=16)}
GOOD_PLAIN = base64.b64encode(f"\0juliet\0{PASSWORD}".encode())     # for the corpus


def corpus() -> list[tuple[str, bytes]]:
    return sorted((p.name, p.read_bytes()) for p in CORPUS.iterdir() if p.is_file())


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def _render(event: Any) -> Any:
    if isinstance(event, StreamOpen):
        return ("open", tuple(sorted(event.attrs.items())), event.default_ns)
    if isinstance(event, StreamClose):
        return "close"
    return serialize(event)


def parse_outcome(data: bytes, cuts: list[int], **limits: Any) -> tuple[list[Any], str | None]:
    """(events, error condition); the condition is "open" when no error came and a stanza is
    still unfinished (its size may yet be found over the limit: see check_parser)."""
    parser = XmlStreamParser(**limits)
    events: list[Any] = []
    for piece in pieces(data, cuts):
        got, error = parser.feed_until_error(piece)
        events += [_render(e) for e in got]
        if error is not None:
            assert isinstance(error, StreamError)
            return events, error.condition
    return events, "open" if parser.in_stanza else None


MORE = b"<presence/><presence/>"
"""Appended to every input: more follows, as in a live stream. A parser may need the next
bytes to judge the last ones (libxml2 does, and so does a held `&ref`); at the end of what it
was given, one split may have judged what another has not yet."""


def check_parser(data: bytes, cuts: list[int]) -> None:
    """The parser's promise (xmppd/xmlstream.py): every split of the same bytes gives the same
    stanzas, or the same error. One documented exception: the size limit is checked per slice
    and "may come up to two slices late", so <policy-violation/> in one split may be another
    error found first in another."""
    limits = {"max_stanza_size": 4096, "max_depth": 16, "max_elements": 64}
    whole = parse_outcome(data + MORE, [], **limits)
    split = parse_outcome(data + MORE, cuts, **limits)
    outcomes = {whole[1], split[1]}
    if "policy-violation" in outcomes and len(outcomes) == 2:
        return                  # found late in one split: allowed, see the docstring
    assert split[1] == whole[1], (whole, split)
    if whole[1] in (None, "open"):
        assert split[0] == whole[0], (whole, split)


class _Output:
    """The client's view of the server's bytes: must stay one well-formed stream (per
    restart)."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False)
        self.depth = 0
        self.closed = False

    def feed(self, data: bytes) -> None:
        assert not self.closed, ("output after </stream:stream>", data)
        self.parser.feed(data)          # raises XMLSyntaxError if we wrote bad XML
        for event, _ in self.parser.read_events():
            self.depth += 1 if event == "start" else -1
            if self.depth == 0:
                self.closed = True


def drive_c2s(data: bytes, cuts: list[int], *, secure: bool = True) -> c2s.C2SStream:
    """Feed `data` to a fresh stream, answering its events as the shell would; raise
    AssertionError if an invariant breaks (see the module docstring)."""
    settings = c2s.C2SSettings(hosts=frozenset({HOST}), tls="optional", tls_available=True,
                               scram_iterations=16)
    stream = c2s.C2SStream(settings, now=0.0, secure=secure, peer_ip="192.0.2.1")
    out = _Output()
    closed = False
    now = 0.0
    for piece in pieces(data, cuts):
        now += 0.01
        stream.receive(piece, now)
        for _ in range(100):            # answer until the stream has no more questions
            sent = stream.data_to_send()
            if sent:
                assert not closed, ("output after Closed", sent)
                out.feed(sent)
            events = stream.events()
            if not events:
                break
            for ev in events:
                assert not closed, ("event after Closed", ev)
                if isinstance(ev, c2s.Closed):
                    closed = True
                elif isinstance(ev, c2s.StartTLS):
                    stream.tls_started()
                    out.restart()
                elif isinstance(ev, c2s.NeedCredentials):
                    stream.credentials_found(ACCOUNTS.get(ev.username))
                elif isinstance(ev, c2s.Authenticated):
                    assert ev.jid.local == "juliet"
                    out.restart()
                elif isinstance(ev, c2s.BindRequest):
                    stream.bind_succeeded(ev.user.with_resource(ev.resource or "r"),
                                          ev.stanza.get("id") or "")
                elif isinstance(ev, c2s.Stanza):
                    assert stream.state == "bound", ev
                    assert ev.stanza.get("from", "").startswith("juliet@example.org/")
                elif isinstance(ev, c2s.Nonza):
                    if stream.state == "bind":
                        stream.nonza_handled()
                elif isinstance(ev, c2s.PreAuthIq):
                    raise AssertionError("pre-auth IQs are not allowed in these settings")
        stream.on_timeout(now)
    if stream.authenticated:
        # A SCRAM proof needs the server's random nonce, which the input cannot hold: only
        # PLAIN with the account's password can have succeeded.
        assert _sends_password(data), data[:300]
    return stream


def _sends_password(data: bytes) -> bool:
    for m in re.finditer(rb">\s*([A-Za-z0-9+/=]+)\s*<", data):
        try:
            if PASSWORD.encode() in base64.b64decode(m.group(1), validate=True):
                return True
        except ValueError:
            continue
    return False

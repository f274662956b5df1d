"""Log records as text or JSON lines, addresses plain/hashed/off, and reopening (xmppd/logs.py)."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from xmppd import logs


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for h in root.handlers:
        h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


class Session:
    id = "abc123"
    bound = True
    jid = "alice@example.org/phone"
    peer_ip = "192.0.2.7"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_json_lines_carry_the_session_fields(tmp_path: Path) -> None:
    log_file = tmp_path / "x.log"
    logs.configure("info", str(log_file), "json", "plain")
    log = logging.getLogger("xmppd.test")
    log.info("authenticated %s", "alice@example.org/phone",
             extra=logs.session_fields(Session(), "authenticated"))
    log.debug("not at info")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it broke")
    first, second = (json.loads(line) for line in lines(log_file))
    assert first["level"] == "info" and first["logger"] == "xmppd.test"
    assert first["event"] == "authenticated"
    assert first["message"] == "authenticated alice@example.org/phone"
    assert (first["session"], first["jid"], first["ip"]) == ("abc123", "alice@example.org/phone",
                                                             "192.0.2.7")
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["event"] == "it broke" and "ValueError: boom" in second["exc"]
    assert "session" not in second


def test_hashed_addresses_are_stable_within_a_run_and_not_the_address(tmp_path: Path) -> None:
    log_file = tmp_path / "x.log"
    logs.configure("info", str(log_file), "json", "hashed")
    log = logging.getLogger("xmppd.test")
    for _ in range(2):
        log.info("hello", extra={"ip": "192.0.2.7"})
    log.info("hello", extra={"ip": "192.0.2.8"})
    a, b, c = (json.loads(line)["ip"] for line in lines(log_file))
    assert a == b != c and len(a) == 16 and set(a) <= set("0123456789abcdef")
    assert "192.0.2.7" not in log_file.read_text()


def test_addresses_off_and_text_format(tmp_path: Path) -> None:
    log_file = tmp_path / "x.log"
    logs.configure("info", str(log_file), "text", "off")
    logging.getLogger("xmppd.test").info("authenticated", extra=logs.session_fields(
        Session(), "authenticated"))
    [line] = lines(log_file)
    assert line.endswith("INFO xmppd.test: authenticated [session=abc123 "
                         "jid=alice@example.org/phone]")
    assert "192.0.2.7" not in line


def test_reopen_after_the_file_was_moved(tmp_path: Path) -> None:
    log_file = tmp_path / "x.log"
    logs.configure("info", str(log_file), "text", "plain")
    log = logging.getLogger("xmppd.test")
    log.info("before")
    log_file.rename(tmp_path / "x.log.1")
    assert logs.reopen() is True
    log.info("after")
    assert "after" in log_file.read_text() and "before" not in log_file.read_text()
    assert "after" not in (tmp_path / "x.log.1").read_text()


def test_reopen_without_a_file_says_so() -> None:
    logs.configure("info", "", "text", "plain")
    assert logs.reopen() is False

# tests: tests/core/test_logs.py, tests/integration/test_live_control.py
"""Logging: text or JSON lines, client addresses plain, hashed or left out, log files that
reopen for logrotate.

- `server.log_format = "json"`: one object per line with `time` (UTC, ISO 8601, ms), `level`,
  `logger`, `event` (a stable name: the `event` a call passes in `extra`, else the message's
  format string), `message`, and `session`, `jid`, `ip` when the record is about a client
  session (`session_fields`), plus `exc` for a traceback. "text" puts the same fields after
  the message as `key=value`.
- `server.log_ip`: "plain", "hashed" (HMAC-SHA-256 under a key made at start, 16 hex digits:
  the same address is the same token within one run, and cannot be looked up from outside it)
  or "off". Log calls put addresses in `extra["ip"]`, never in the message text, so this holds.
- Message bodies are never logged at info or above (STYLE §8: stanzas are logged as
  `summary()`: name, type, id, from, to, payload namespace).
- `reopen()` closes and reopens the log file (SIGHUP, `xmppctl reload`): logrotate moves the
  file, then signals; nothing is lost and nothing is written to the moved file afterwards.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_FIELDS = ("session", "jid", "ip")
_KEY = secrets.token_bytes(32)          # for hashed addresses; one per process run


class _Fields(logging.Filter):
    """Applies `server.log_ip` to the record's `ip` (in place, before any formatter)."""

    def __init__(self, ip_mode: str) -> None:
        super().__init__()
        self.ip_mode = ip_mode

    def filter(self, record: logging.LogRecord) -> bool:
        ip = getattr(record, "ip", None)
        if ip is not None and not getattr(record, "_ip_done", False):
            if self.ip_mode == "off":
                record.ip = None
            elif self.ip_mode == "hashed":
                record.ip = hmac.new(_KEY, str(ip).encode(), hashlib.sha256).hexdigest()[:16]
            record._ip_done = True
        return True


def _event(record: logging.LogRecord) -> str:
    event = getattr(record, "event", None)
    return str(event) if event else str(record.msg)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _event(record),
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = str(value)
        if record.exc_info:
            out["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{name}={getattr(record, name)}" for name in _FIELDS
                         if getattr(record, name, None) is not None)
        if not extra:
            return line
        first, nl, rest = line.partition("\n")
        return f"{first} [{extra}]{nl}{rest}"


class ReopeningFileHandler(logging.FileHandler):
    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def configure(level: str, file: str, fmt: str, ip_mode: str) -> None:
    """(Re)build the root logger's handler from the `[server]` log keys."""
    handler: logging.Handler
    if file:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handler = ReopeningFileHandler(file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_Fields(ip_mode))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def reopen() -> bool:
    """Reopen the log file (after logrotate moved it); False when logging to stderr."""
    done = False
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ReopeningFileHandler):
            handler.reopen()
            done = True
    return done


def session_fields(session: Any, event: str) -> dict[str, Any]:
    """`extra` for a log call about a client session (its id, JID once bound, address)."""
    bound = getattr(session, "bound", False)
    jid = getattr(session, "jid", None) if bound else getattr(
        getattr(session, "stream", None), "jid", None)
    return {"event": event, "session": getattr(session, "id", None),
            "jid": str(jid) if jid is not None else None, "ip": getattr(session, "peer_ip", None)}

"""`mypy --strict` over the server packages is part of the suite (issue 12; STYLE §1.9)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_server_packages_are_strictly_typed() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "xmppd", "stanzas",
                           "storage", "modules"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

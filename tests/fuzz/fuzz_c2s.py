# tests: tests/core/test_fuzz_atheris.py
"""atheris (coverage-guided, libFuzzer) on the client-to-server negotiation: the invariants of
tests/fuzz/targets.py's `drive_c2s`, on an encrypted and a plain stream, whole and in 5-byte
reads.

Run: PYTHONPATH=. python tests/fuzz/fuzz_c2s.py [libFuzzer flags] CORPUS_DIR...
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["xmppd", "tests.fuzz"]):
    from tests.fuzz.targets import drive_c2s


def one_input(data: bytes) -> None:
    drive_c2s(data, [], secure=True)
    drive_c2s(data, list(range(0, len(data), 5)), secure=False)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

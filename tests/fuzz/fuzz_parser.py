# tests: tests/core/test_fuzz_atheris.py
"""atheris (coverage-guided, libFuzzer) on the stream parser: the same target as the
hypothesis test (tests/fuzz/targets.py: every split gives the same outcome).

Run: PYTHONPATH=. python tests/fuzz/fuzz_parser.py [libFuzzer flags] CORPUS_DIR...
(`make test` runs it for a bounded time on a copy of tests/fuzz/corpus/.)
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["xmppd", "tests.fuzz"]):
    from tests.fuzz.targets import check_parser


def one_input(data: bytes) -> None:
    check_parser(data, list(range(0, len(data), 7)))         # whole vs 7-byte reads


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

# tests: tests/fuzz/fuzz_parser.py, tests/fuzz/fuzz_c2s.py
"""Coverage-guided fuzzing (atheris, libFuzzer) of the stream parser and the c2s negotiation,
for a bounded time in `make test` (FUZZ_SECONDS each, default 20), seeded with the regression
corpus (tests/fuzz/corpus/). A crash leaves its input in the temp dir and fails the test with
the fuzzer's report; add that input to the corpus once fixed. Under CI=true libFuzzer's seed
is fixed, so every build tries the same inputs in the same order (how many depends on the
machine's speed), as the hypothesis tests run the same examples (tests/fuzz/strategies.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("FUZZ_SECONDS", "20"))
SEED = ["-seed=1"] if os.environ.get("CI", "").strip().lower() == "true" else []


@pytest.mark.parametrize("target", ["fuzz_parser.py", "fuzz_c2s.py"])
def test_fuzz_target_finds_nothing_in_its_time(target: str, tmp_path: Path) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("atheris is missing (pip install -e '.[dev]')")
        pytest.skip("atheris is not installed")
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO / "tests" / "fuzz" / "corpus", corpus)   # libFuzzer adds to it
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "fuzz" / target), f"-max_total_time={SECONDS}",
         "-timeout=10", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/", *SEED,
         str(corpus)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=SECONDS + 90)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr

"""House rules (STYLE §9): no wall clock, reactor import, asyncio sleep or print in modules/,
stanzas/ or the sans-IO core. Fails naming the file and line."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = [*ROOT.glob("modules/**/*.py"), *ROOT.glob("stanzas/**/*.py"),
           ROOT / "xmppd/c2s.py", ROOT / "xmppd/xmlstream.py", ROOT / "xmppd/xmlscan.py",
           ROOT / "xmppd/xmlframes.py", ROOT / "xmppd/xmlevents.py", ROOT / "xmppd/router.py",
           ROOT / "xmppd/sessions.py", ROOT / "xmppd/hooks.py", ROOT / "xmppd/module.py",
           *ROOT.glob("xmppd/s2s/*.py"),       # federation's sans-IO core and its service
           ROOT / "xmppd/concurrency.py"]
FORBIDDEN = re.compile(r"from twisted\.internet import reactor|time\.time\(|time\.monotonic\(|"
                       r"asyncio\.sleep\(|^\s*print\(")


def test_no_clock_reactor_or_print_in_core_and_modules() -> None:
    hits = []
    for path in CHECKED:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_every_source_file_names_its_tests() -> None:
    missing = []
    for path in [*ROOT.glob("xmppd/**/*.py"), *ROOT.glob("modules/**/*.py"),
                 *ROOT.glob("stanzas/**/*.py"), *ROOT.glob("storage/**/*.py")]:
        text = path.read_text()
        if path.name == "__init__.py" and not text.strip() or "migrations" in path.parts:
            continue
        if not text.startswith("# tests:"):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"first line must be '# tests: ...': {missing}"


def test_every_named_test_file_exists() -> None:
    """The `# tests:` header names files (or globs) that exist: a renamed test is noticed."""
    stale = []
    for path in [*ROOT.glob("xmppd/**/*.py"), *ROOT.glob("modules/**/*.py"),
                 *ROOT.glob("stanzas/**/*.py"), *ROOT.glob("storage/**/*.py"),
                 *ROOT.glob("bot/**/*.py"), *ROOT.glob("tests/harness/*.py")]:
        first = path.read_text().split("\n", 1)[0]
        if not first.startswith("# tests:"):
            continue
        for name in (n.strip() for n in first[len("# tests:"):].split(",")):
            if name and not any(ROOT.glob(name.rstrip("/"))):
                stale.append(f"{path.relative_to(ROOT)}: {name}")
    assert not stale, "\n".join(stale)

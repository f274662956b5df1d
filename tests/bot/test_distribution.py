"""The bot SDK is its own distribution (bot/pyproject.toml, issue 12 §5): it imports nothing of
the server, declares its command and its one dependency, keeps the house rules (file headers,
sizes, mypy --strict), and the server's own install no longer pulls slixmpp."""
from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.bot.conftest import BOT_DIST
from tests.harness.server_proc import REPO

SERVER_PACKAGES = {"xmppd", "modules", "stanzas", "storage", "tests"}
SDK = BOT_DIST / "xmppd_bot"
SOURCES = sorted([*SDK.glob("**/*.py"), *(BOT_DIST / "examples").glob("*.py")])


def server_imports(source: str, filename: str = "<source>") -> list[str]:
    """`file:line: module` for each import of a server package in `source`."""
    hits = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", "")) in ("import_module", "__import__") and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names = [node.args[0].value]
        hits += [f"{filename}:{node.lineno}: {n}" for n in names
                 if n.split(".")[0] in SERVER_PACKAGES]
    return hits


def test_the_scan_finds_server_imports_in_every_spelling() -> None:
    source = ("import os\nfrom xmppd_bot.jid import JID\nfrom . import errors\n"
              "from stanzas.jid import JID\nimport xmppd.router, json\nimport storage as s\n"
              "importlib.import_module('modules.ping')\n__import__('tests.harness')\n")
    assert server_imports(source) == ["<source>:4: stanzas.jid", "<source>:5: xmppd.router",
                                      "<source>:6: storage", "<source>:7: modules.ping",
                                      "<source>:8: tests.harness"]


def test_the_sdk_and_its_examples_import_nothing_of_the_server() -> None:
    assert len(SOURCES) > 15
    hits = [h for path in SOURCES
            for h in server_imports(path.read_text(), str(path.relative_to(REPO)))]
    assert hits == []


def test_importing_every_sdk_module_loads_no_server_module(tmp_path: Path) -> None:
    modules = sorted(f"xmppd_bot.{p.stem}" for p in SDK.glob("*.py")
                     if p.stem not in ("__init__", "__main__"))
    code = (f"import sys\nimport xmppd_bot\nfor m in {modules!r}:\n    __import__(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_PACKAGES!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(BOT_DIST)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_sdk_file_names_tests_that_exist() -> None:
    wrong = []
    for path in SOURCES:
        first = path.read_text().split("\n", 1)[0]
        named = [n.strip() for n in first.removeprefix("# tests:").split(",")]
        if not first.startswith("# tests:") or not all(
                n.startswith("tests/") and n.endswith(".py") and (REPO / n).is_file()
                for n in named):
            wrong.append(f"{path.relative_to(REPO)}: {first}")
    assert wrong == []


def test_no_sdk_file_is_over_400_lines_and_examples_stay_short() -> None:
    long = [f"{p.relative_to(REPO)}: {n}" for p in SOURCES
            if (n := len(p.read_text().splitlines())) > (60 if p.parent.name == "examples"
                                                         else 400)]
    assert long == []


def test_the_distribution_declares_its_command_and_dependency() -> None:
    project = tomllib.loads((BOT_DIST / "pyproject.toml").read_text())["project"]
    assert project["name"] == "xmppd-bot"
    assert project["scripts"] == {"xmppd-bot": "xmppd_bot.runner:main"}
    assert [re.split("[<>=!~ ;]", d)[0] for d in project["dependencies"]] == ["slixmpp"]


def test_the_server_install_pulls_no_slixmpp_and_has_no_bot_command() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    requires = cfg["options"]["install_requires"].split()
    assert requires and not any(r.lower().startswith("slixmpp") for r in requires)
    assert "slixmpp>=1.8" in cfg["options.extras_require"]["dev"].split()   # tests use it
    assert "xmppd-bot" not in cfg["options.entry_points"]["console_scripts"]
    assert "bot" not in cfg["options.packages.find"]["include"].split()


def test_mypy_strict_is_clean_on_the_sdk() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file",
                           str(BOT_DIST / "pyproject.toml"), str(SDK), str(BOT_DIST / "examples")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

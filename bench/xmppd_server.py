"""xmppd under test (bench/compare.py), with the config it ships: conf/xmppd.toml read and
changed programmatically, never a template of ours, so the bench measures what `make run`
runs.  What changes (bench_config):

- every listener's port (c2s, http, metrics: free ports below 32768; binds stay 127.0.0.1);
- [limits]: 127.0.0.0/8 and ::1 exempt from the per-address limits, and the per-session
  shaping (c2s_rate, stanza_rate) off: the load generator is thousands of users on one
  address, each sending hundreds of messages a second (Prosody and ejabberd run unshaped);
- archive-off variant only: [modules.mam] default = "never" (the shipped switch a user turns).

Relative paths (var/…) stay: they are under the directory the server starts in, its temp dir;
our certificate goes where [tls] looks for it.  The server runs as
`python -c 'from xmppd.main import main; main()' --config FILE` with this checkout on
PYTHONPATH, so the code measured is the checkout's, whichever venv runs the bench.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from servers import DOMAIN, REPO_ROOT, Server, free_port, log, wait_port

SHIPPED = REPO_ROOT / "conf" / "xmppd.toml"
LOOPBACK = ["127.0.0.0/8", "::1"]


def bench_config(shipped: dict[str, Any], archive: bool) -> tuple[dict[str, Any], dict[str, int]]:
    """The shipped config with the changes above; returns it and the ports by listener type."""
    cfg = copy.deepcopy(shipped)
    ports: dict[str, int] = {}
    for lst in cfg.get("listeners", []):
        lst["port"] = ports.setdefault(lst["type"], free_port())
        lst["bind"] = "127.0.0.1"
    limits = cfg.setdefault("limits", {})
    limits["exempt_networks"] = LOOPBACK
    limits["c2s_rate"] = "off"
    limits["stanza_rate"] = "off"
    if not archive:
        cfg.setdefault("modules", {}).setdefault("mam", {})["default"] = "never"
    return cfg, ports


# -- a TOML writer for what config files hold (tomllib only reads) ---------------------------
def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _scalar(k)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps(doc: dict[str, Any], prefix: str = "") -> str:
    """Key/values first, then sub-tables as [a.b] and lists of tables as [[a.b]]."""
    out: list[str] = []
    for k, v in doc.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            out.append(f"{_key(k)} = {_scalar(v)}")
    for k, v in doc.items():
        name = f"{prefix}.{_key(k)}" if prefix else _key(k)
        if isinstance(v, dict):
            out += [f"\n[{name}]", dumps(v, name)]
        elif _is_table_array(v):
            for item in v:
                out += [f"\n[[{name}]]", dumps(item, name)]
    return "\n".join(x for x in out if x)


class Xmppd(Server):
    name = "xmppd"
    user = None              # runs as the invoking user
    proc_comm = ""           # the interpreter started is the server

    def __init__(self, archive: bool, cert: str, key: str, args: Any) -> None:
        super().__init__(archive, cert, key, args)
        self.label = "xmppd" if archive else "xmppd-nomam"

    def describe(self) -> str:
        return ("xmppd, shipped conf/xmppd.toml (archive on)" if self.archive
                else 'xmppd, shipped conf/xmppd.toml with [modules.mam] default = "never"')

    def python(self) -> str:
        return str(self.args.python)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                              if env.get("PYTHONPATH") else "")
        return env

    def write_config(self) -> None:
        shipped = tomllib.loads(SHIPPED.read_text())
        cfg, self.ports = bench_config(shipped, self.archive)
        self.port = self.ports["c2s"]
        self.cfg = os.path.join(self.tmp, "xmppd.toml")
        text = dumps(cfg)
        if tomllib.loads(text) != cfg:            # the writer must round-trip what it writes
            raise RuntimeError("bench/xmppd_server.py wrote a TOML that reads back differently")
        Path(self.cfg).write_text(f"# {SHIPPED.name} as shipped, changed by "
                                  "bench/xmppd_server.py:bench_config\n" + text + "\n")
        tls = cfg.get("tls", {})
        for src, dst in ((self.cert, tls.get("cert")), (self.key, tls.get("key"))):
            if dst:
                target = Path(self.tmp, dst) if not os.path.isabs(dst) else Path(dst)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, target)

    def start(self) -> None:
        self.write_config()
        self.proc = self.popen([self.python(), "-c",
                                "import sys; from xmppd.main import main; sys.exit(main())",
                                "--config", self.cfg], env=self.env())
        wait_port(self.port, self.proc, timeout=60)
        self.pid = self.proc.pid

    def register(self, n: int) -> None:
        """user1 through xmppctl as documented, the rest through the same entry point
        (xmppd.ctl.main(argv)) in one interpreter: a Python start per account takes minutes."""
        code = (
            "import sys\n"
            "from xmppd.ctl import main\n"
            "cfg, host, lo, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])\n"
            "for i in range(lo, n + 1):\n"
            "    rc = main(['--config', cfg, 'register', f'user{i}', host, f'pw{i}'])\n"
            "    if rc not in (0, 1):\n"
            "        sys.exit(f'xmppctl register user{i}: rc={rc}')\n")
        for lo, hi in ((1, 1), (2, n)):
            if hi < lo:
                continue
            r = subprocess.run([self.python(), "-c", code, self.cfg, DOMAIN, str(lo), str(hi)],
                               cwd=self.tmp, env=self.env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            if r.returncode != 0:
                log(self.label, "xmppctl register failed:", r.stderr.decode()[-500:])
                raise RuntimeError("xmppctl register failed")

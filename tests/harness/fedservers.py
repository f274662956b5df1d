# tests: tests/integration/test_federation_xmppd.py, tests/integration/test_federation_prosody.py, tests/integration/test_federation_ejabberd.py
"""Servers for the federation lab (tests/harness/fedlab.py): xmppd, Prosody and ejabberd, each
with its own address, domain (+ conference.<domain>), certificate, users and config, started
in the lab's DNS namespace and stopped with the lab. Prosody and ejabberd run as their own
system users (setpriv), with configs written here, as bench/compare.py does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.fedlab import REPO, Lab, as_user, chown_tree, tail, wait_port

XMPPD_MODULES = """
[modules.disco]
[modules.ping]
[modules.roster]
[modules.presence]
[modules.last]
[modules.vcard]
[modules.version]
[modules.blocking]
[modules.offline]
[modules.receipts]
[modules.carbons]
[modules.mam]
[modules.caps]
[modules.muc]
"""


class LabServer:
    name = "?"
    user: str | None = None

    def __init__(self, lab: Lab, domain: str, address: str) -> None:
        self.lab = lab
        self.domain = domain
        self.address = address
        self.dir = lab.dir / domain
        self.dir.mkdir()
        self.dir.chmod(0o755)
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.users: dict[str, str] = {}
        lab.certificate(domain).write(self.dir / "cert.pem", self.dir / "key.pem")

    @property
    def muc(self) -> str:
        return f"conference.{self.domain}"

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def logs(self) -> str:
        return tail(self.log, 6000)


class XmppdServer(LabServer):
    name = "xmppd"

    def __init__(self, lab: Lab, domain: str, address: str, *, direct_tls: bool = False,
                 routes: dict[str, str] | None = None, extra: str = "") -> None:
        super().__init__(lab, domain, address)
        routes_toml = "".join(f'"{d}" = "{t}"\n' for d, t in (routes or {}).items())
        ca = f'ca_file = "{lab.ca_file}"' if lab.ca is not None else ""
        direct = (f'[[listeners]]\ntype = "s2s_tls"\nbind = "{address}"\nport = 5270\n'
                  if direct_tls else "")
        self.config = self.dir / "xmppd.toml"
        self.config.write_text(f"""
[server]
hosts = ["{domain}"]
log_level = "debug"
log_file = "{self.log}"

[storage]
url = "sqlite:///{self.dir}/xmppd.sqlite"

[tls]
cert = "{self.dir}/cert.pem"
key = "{self.dir}/key.pem"
generate_self_signed = false

[[listeners]]
type = "c2s"
bind = "{address}"
port = 5222

[[listeners]]
type = "s2s"
bind = "{address}"
port = 5269

{direct}
[s2s]
{ca}
connect_timeout = "20 s"
{extra}
[s2s.routes]
{routes_toml}
{XMPPD_MODULES}
""")

    def register(self, user: str, password: str) -> None:
        r = subprocess.run([sys.executable, "-m", "xmppd.ctl", "--config", str(self.config),
                            "register", user, self.domain, password], cwd=REPO,
                           capture_output=True, text=True, timeout=60,
                           env={**self.lab.env(), "PYTHONPATH": str(REPO)})
        assert r.returncode == 0, r.stderr
        self.users[user] = password

    def start(self) -> None:
        self.proc = self.lab.spawn([sys.executable, "-m", "xmppd.main", "--config",
                                    str(self.config)], cwd=REPO, log=self.dir / "stdout.log",
                                   PYTHONPATH=str(REPO))
        wait_port(self.address, 5269, self.proc, f"xmppd {self.domain}", log=self.log)
        wait_port(self.address, 5222, self.proc, f"xmppd {self.domain}", log=self.log)


class ProsodyServer(LabServer):
    name = "prosody"
    user = "prosody"

    def __init__(self, lab: Lab, domain: str, address: str) -> None:
        super().__init__(lab, domain, address)
        d = self.dir
        (d / "data").mkdir()
        secure = "true" if lab.ca is not None else "false"
        cafile = f'cafile = "{lab.ca_file}";' if lab.ca is not None else ""
        self.config = d / "prosody.cfg.lua"
        self.config.write_text(f"""-- written by tests/harness/fedservers.py
daemonize = false
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
log = {{ debug = "{self.log}" }}
interfaces = {{ "{address}" }}
c2s_ports = {{ 5222 }}
s2s_ports = {{ 5269 }}
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {secure}
authentication = "internal_hashed"
storage = "internal"
allow_registration = false
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "disco", "ping", "offline",
                    "carbons", "mam", "presence", "private", "vcard", "version" }}
ssl = {{ certificate = "{d}/cert.pem"; key = "{d}/key.pem"; {cafile} }}
VirtualHost "{domain}"
Component "{self.muc}" "muc"
  restrict_room_creation = false
""")
        chown_tree(d, "prosody")

    def register(self, user: str, password: str) -> None:
        r = subprocess.run(as_user("prosody") + ["prosodyctl", "--config", str(self.config),
                                                 "register", user, self.domain, password],
                           cwd=self.dir, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        self.users[user] = password

    def start(self) -> None:
        self.proc = self.lab.spawn(as_user("prosody") + ["prosody", "-F", "--config",
                                                         str(self.config)],
                                   cwd=self.dir, log=self.dir / "stdout.log")
        wait_port(self.address, 5269, self.proc, "prosody", log=self.log)
        wait_port(self.address, 5222, self.proc, "prosody", log=self.log)


class EjabberdServer(LabServer):
    name = "ejabberd"
    user = "ejabberd"

    def __init__(self, lab: Lab, domain: str, address: str, dist_port: int) -> None:
        super().__init__(lab, domain, address)
        d = self.dir
        for sub in ("spool", "logs"):
            (d / sub).mkdir()
        (d / "ejabberd.pem").write_bytes((d / "cert.pem").read_bytes()
                                         + (d / "key.pem").read_bytes())
        ca = f'ca_file: "{lab.ca_file}"' if lab.ca is not None else ""
        dialback = "" if lab.ca is not None else "  mod_s2s_dialback: {}\n"
        self.yml = d / "ejabberd.yml"
        self.yml.write_text(f"""# written by tests/harness/fedservers.py
hosts:
  - {domain}
loglevel: debug
log_rotate_count: 0
certfiles:
  - "{d}/ejabberd.pem"
{ca}
s2s_use_starttls: required
listen:
  -
    port: 5222
    ip: "{address}"
    module: ejabberd_c2s
    starttls_required: true
  -
    port: 5269
    ip: "{address}"
    module: ejabberd_s2s_in
auth_method: internal
auth_password_format: scram
default_db: mnesia
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
s2s_access: s2s
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_offline: {{}}
  mod_carboncopy: {{}}
  mod_caps: {{}}
  mod_vcard: {{}}
  mod_muc:
    host: "conference.@HOST@"
    access_create: all
    access_persistent: all
{dialback}""")
        self.ctlcfg = d / "ejabberdctl.cfg"
        self.ctlcfg.write_text(f"""# written by tests/harness/fedservers.py
ERLANG_NODE=fedlab{dist_port}@localhost
EJABBERD_CONFIG_PATH={self.yml}
SPOOL_DIR={d}/spool
LOGS_DIR={d}/logs
EJABBERD_PID_PATH={d}/ejabberd.pid
CONTRIB_MODULES_PATH={d}/contrib
CONTRIB_MODULES_CONF_DIR={d}/contrib-conf
ERL_DIST_PORT={dist_port}
INET_DIST_INTERFACE=127.0.0.1
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_BYPASS_WARNINGS=true
""")
        self.log = d / "logs" / "ejabberd.log"
        chown_tree(d, "ejabberd")

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(as_user("ejabberd", str(self.dir)) + [
            "ejabberdctl", "--ctl-config", str(self.ctlcfg), *args], cwd=self.dir,
            capture_output=True, text=True, timeout=timeout)

    def register(self, user: str, password: str) -> None:
        r = self.ctl("register", user, self.domain, password)
        assert r.returncode == 0, r.stdout + r.stderr
        self.users[user] = password

    def start(self) -> None:
        self.proc = self.lab.spawn(as_user("ejabberd", str(self.dir)) + [
            "ejabberdctl", "--ctl-config", str(self.ctlcfg), "foreground"],
            cwd=self.dir, log=self.dir / "stdout.log")
        wait_port(self.address, 5222, self.proc, "ejabberd", timeout=120,
                  log=self.dir / "stdout.log")
        wait_port(self.address, 5269, self.proc, "ejabberd", timeout=60,
                  log=self.dir / "stdout.log")
        r = self.ctl("started")
        assert r.returncode == 0, r.stdout + r.stderr

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.ctl("stop", timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass


def logs_of(*servers: LabServer) -> str:
    return "\n".join(f"---- {s.name} {s.domain} ----\n{s.logs()}" for s in servers)


def wait_log(server: LabServer, text: str, timeout: float = 10.0) -> bool:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in tail(server.log, 10**7):
            return True
        time.sleep(0.1)
    return False


__all__ = ["XmppdServer", "ProsodyServer", "EjabberdServer", "logs_of", "wait_log", "Path"]

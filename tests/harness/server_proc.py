# tests: tests/integration/
"""Run the real server (`python -m xmppd.main`) in a subprocess on a free port, with a config
written to a temp dir, and `xmppctl` against the same config. Used by integration tests."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# The modules a test server loads unless a test passes its own list (tests that need other
# options for one module edit a copy of this text).
DEFAULT_MODULES = """
[modules.disco]
[modules.ping]
[modules.version]
[modules.time]
[modules.register]
allow_from = ["127.0.0.0/8", "::1"]
[modules.roster]
[modules.presence]
[modules.last]
[modules.blocking]
[modules.vcard]
[modules.offline]
[modules.receipts]
[modules.carbons]
[modules.mam]
[modules.stream_mgmt]
[modules.csi]
[modules.muc]
[modules.caps]
[modules.pep]
[modules.private]
[modules.bookmarks]
"""


def config_text(tmp: Path, storage_url: str, cache_url: str, extra: str = "",
                modules: str | None = None) -> str:
    if modules is None:
        modules = DEFAULT_MODULES
    return f"""
[server]
hosts = ["localhost", "example.test"]
log_level = "info"
log_file = "{tmp / 'xmppd.log'}"

[storage]
url = "{storage_url}"

[cache]
url = "{cache_url}"
prefix = "xmppd_t_{secrets.token_hex(6)}:"    # servers sharing the test Redis never collide

[tls]
cert = "{tmp / 'cert.pem'}"
key = "{tmp / 'key.pem'}"

[[listeners]]
bind = "127.0.0.1"
port = 0
port_file = "{tmp / 'port'}"
starttls = "required"

{extra}
{modules}
"""


@dataclass
class RunningServer:
    tmp: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    fd_limits: tuple[int, int] | None = None    # (soft, hard) RLIMIT_NOFILE to start it with

    def start(self, timeout: float = 30.0) -> None:
        port_file = self.tmp / "port"
        port_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xmppd.main", "--config", str(self.config)],
            cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=self._set_fd_limits if self.fd_limits else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"xmppd exited with {self.proc.returncode}: {err}\n"
                                   f"{self.log()}")
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"xmppd did not start within {timeout} s\n{self.log()}")

    def _set_fd_limits(self) -> None:
        import resource
        assert self.fd_limits is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.fd_limits)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def ctl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xmppd.ctl", "--config", str(self.config), *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, input=input, timeout=60)

    def log(self) -> str:
        path = self.tmp / "xmppd.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def cpu_seconds(self) -> float:
        """utime + stime of the server process, from /proc (Linux)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_server(tmp: Path, storage_url: str, cache_url: str, extra: str = "",
                modules: str | None = None) -> RunningServer:
    cfg = tmp / "xmppd.toml"
    cfg.write_text(config_text(tmp, storage_url, cache_url, extra, modules))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return RunningServer(tmp=tmp, config=cfg, env=env)

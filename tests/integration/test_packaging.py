# tests: setup.py, xmppd/paths.py, packaging/xmppd.service
"""The server as an operator installs it: a wheel built from this checkout, installed into a
fresh virtualenv and run from a directory with no source tree — `xmppctl check-config` finds
the packaged default config, `xmppd` starts (migrations from package data), answers `xmppctl
status`, serves its dashboard, and stops on SIGTERM. The systemd unit passes
`systemd-analyze verify`."""
from __future__ import annotations

import os
import shutil
import signal
import site
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.harness.server_proc import REPO


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing")
        pytest.skip(f"{tool} is missing")
    return found


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with only the wheel of xmppd installed; its dependencies are this
    interpreter's (a .pth line), so the test needs no network."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp / "dist"), str(REPO)], check=True, timeout=300,
                   capture_output=True)
    for leftover in (REPO / "build", *REPO.glob("*.egg-info")):
        shutil.rmtree(leftover, ignore_errors=True)
    [wheel] = (tmp / "dist").glob("xmppd-*.whl")
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                   timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"),
                    "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   timeout=300, capture_output=True)
    [purelib] = (env_dir / "lib").glob("python3*/site-packages")
    (purelib / "zz_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env_dir


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XMPPD_CONFIG")}
    return env


def test_the_installed_package_stands_alone(venv: Path, tmp_path: Path) -> None:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import xmppd, storage; print(xmppd.__file__); print(storage.__file__)"],
                         cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                         timeout=60, check=True)
    for line in out.stdout.split():
        assert line.startswith(str(venv)), out.stdout
    check = subprocess.run([str(venv / "bin" / "xmppctl"), "check-config"], cwd=tmp_path,
                           env=clean_env(), capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(str(venv)) and "xmppd/data/xmppd.toml: OK" in check.stdout
    assert "admin_commands" in check.stdout


def test_xmppd_starts_migrates_answers_and_stops(venv: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "test.toml"
    cfg.write_text(f"""
[server]
hosts = ["localhost"]
log_file = "var/xmppd.log"
admin_socket = "var/run/xmppd.sock"
[storage]
url = "sqlite:///var/xmppd.sqlite"
[[listeners]]
port = 0
port_file = "var/c2s_port"
[[listeners]]
type = "metrics"
port = 0
port_file = "var/metrics_port"
[modules.disco]
[modules.adhoc]
[modules.admin_commands]
""")
    ctl = [str(venv / "bin" / "xmppctl"), "--config", str(cfg)]
    assert subprocess.run([*ctl, "register", "alice", "localhost", "pw"], cwd=tmp_path,
                          env=clean_env(), timeout=60).returncode == 0
    proc = subprocess.Popen([str(venv / "bin" / "xmppd"), "--config", str(cfg)], cwd=tmp_path,
                            env=clean_env(), stderr=subprocess.PIPE)
    try:
        port_file = tmp_path / "var" / "metrics_port"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status = subprocess.run([*ctl, "status"], cwd=tmp_path, env=clean_env(),
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert "xmppd 0.1.0 running" in status.stdout
        page = urllib.request.urlopen(f"http://127.0.0.1:{port_file.read_text().strip()}/",
                                      timeout=10).read()
        assert b"histogram_quantile" in page
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    with sqlite3.connect(tmp_path / "var" / "xmppd.sqlite") as db:
        [(revision,)] = db.execute("SELECT version_num FROM alembic_version").fetchall()
        users = db.execute("SELECT username, disabled FROM accounts").fetchall()
    from storage.db import head_revision
    assert revision == head_revision()      # every migration ran, from the package's data
    assert users == [("alice", 0)]


def test_systemd_unit_verifies(venv: Path, tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    unit = (REPO / "packaging" / "xmppd.service").read_text()
    assert "ExecStart=/opt/xmppd/bin/xmppd --config /etc/xmppd/xmppd.toml" in unit
    for key in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                "CapabilityBoundingSet=", "SystemCallFilter=@system-service",
                "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "ExecReload=/bin/kill -HUP",
                "RuntimeDirectory=xmppd"):
        assert key in unit
    local = tmp_path / "xmppd.service"
    local.write_text(unit.replace("/opt/xmppd/bin/xmppd", str(venv / "bin" / "xmppd")))
    done = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr

"""Starting the servers the comparison measures (bench/compare.py): what they all share.

Every server gets a temp dir with a config of ours, the same self-signed certificate and its
own data, is bound to 127.0.0.1 on ports below 32768 (the load generator's connections take
their source ports from the kernel's ephemeral range, 32768-60999 on Linux, so the two never
collide), creates accounts user1..userN (password pw<i>) with its own admin tool, and is
measured as its process tree (procstat.tree_cpu_seconds).  Nothing under /etc or /var/lib is
used or changed.  The servers themselves: bench/anchors.py (Prosody, ejabberd) and
bench/xmppd_server.py.
"""
from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import procstat

REPO_ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "localhost"
MUC_DOMAIN = f"conference.{DOMAIN}"
APT_HINT = "apt-get install -y prosody ejabberd"
PORT_RANGE = (20000, 32767)          # below the ephemeral range (ip_local_port_range)
_taken: set[int] = set()


def log(*a: Any) -> None:
    print("[bench]", *a, file=sys.stderr, flush=True)


def free_port() -> int:
    """A port below 32768 that nothing listens on (and not handed out before in this run)."""
    lo, hi = PORT_RANGE
    for _ in range(1000):
        port = random.randint(lo, hi)
        if port in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} not accepting after {timeout}s")


def make_cert(dirpath: str) -> tuple[str, str]:
    cert, key = os.path.join(dirpath, "cert.pem"), os.path.join(dirpath, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
         "-keyout", key, "-out", cert, "-subj", f"/CN={DOMAIN}",
         "-addext", f"subjectAltName=DNS:{DOMAIN},DNS:*.{DOMAIN}"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def as_user(user: str | None, home: str | None = None) -> list[str]:
    """Command prefix that drops to a system user (when we run as root)."""
    if not user or os.geteuid() != 0:
        return []
    pre = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    if home:
        pre += ["env", f"HOME={home}"]
    return pre


def chown_tree(path: str, user: str | None) -> None:
    if not user or os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    for root, _dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


def run_parallel(cmds: list[list[str]], workers: int, retries: int = 2, **kw: Any) -> None:
    def one(cmd: list[str]) -> None:
        for attempt in range(retries + 1):
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
            if r.returncode == 0:
                return
            if attempt == retries:
                raise RuntimeError(f"{' '.join(cmd)} failed: {r.stdout.decode()[-500:]}")
            time.sleep(0.5)
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, cmds))


def set_autogroup_nice(pid: int | str, nice: int) -> None:
    """With kernel.sched_autogroup_enabled=1 every session (setsid) is its own scheduling
    group and plain niceness only matters inside it, so --nice goes to the autogroup too."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass


class Server:
    """One server under test.  ``archive``: every one-to-one message archived (XEP-0313 with
    the default "always") and rooms created with their archive on."""
    name = "?"
    user: str | None = None
    proc_comm = ""            # comm of the process to measure (under the started one)
    room_fields = "logging,archiving"    # lg_muc.ARCHIVE_FIELDS this server is sent

    def __init__(self, archive: bool, cert: str, key: str, args: Any) -> None:
        self.archive = archive
        self.mam = archive                 # the name bench/muc_bench.py reads
        self.args = args
        self.label = self.name + ("+mam" if archive else "")
        self.tmp = tempfile.mkdtemp(prefix=f"bench-{self.name}-")
        os.chmod(self.tmp, 0o755)
        self.cert, self.key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        shutil.copy(cert, self.cert)
        shutil.copy(key, self.key)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.logf = open(os.path.join(self.tmp, "stdout.log"), "wb")
        self.logins = 0                    # logins so far (the scenarios report theirs)

    def describe(self) -> str:
        """The configuration, in a few words, for the report."""
        return self.label

    def popen(self, cmd: list[str], **kw: Any) -> subprocess.Popen:
        log(self.label, "start:", " ".join(cmd))
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             cwd=self.tmp, **kw)
        if self.args.nice:
            set_autogroup_nice(p.pid, self.args.nice)
        return p

    def start(self) -> None:
        raise NotImplementedError

    def register(self, n: int) -> None:
        raise NotImplementedError

    def find_pid(self) -> None:
        assert self.proc is not None
        deadline = time.time() + 30
        while time.time() < deadline:
            pid = procstat.find_process(self.proc.pid, self.proc_comm)
            if pid:
                self.pid = pid
                return
            time.sleep(0.2)
        raise RuntimeError(f"no {self.proc_comm} process under {self.proc.pid}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.pid or self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:  # anything left in the server's own process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        self.logf.close()
        if self.args.keep_tmp:
            log(self.label, "kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self) -> str:
        try:
            return Path(self.tmp, "stdout.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def machine_info() -> dict[str, str]:
    """nproc, CPU model, load average, versions: the report's machine line."""
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    vers = ""
    try:
        vers = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n", "prosody",
                               "ejabberd"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.strip().replace("\n", ", ")
    except OSError:
        pass
    mem = ""
    try:
        kib = int(open("/proc/meminfo").readline().split()[1])
        mem = f"{kib / 1048576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": str(os.cpu_count()), "cpu": model, "mem": mem,
            "loadavg": " ".join(open("/proc/loadavg").read().split()[:3]),
            "python": sys.version.split()[0], "versions": vers}

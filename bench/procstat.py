"""Tiny /proc readers used by the load generator and the comparison runner.

Linux only, stdlib only.  All functions take a numeric pid and read the
kernel's accounting directly, so they work for any server process (a
Python xmppd, Prosody's ``lua5.4`` or ejabberd's ``beam.smp``) as long as
we are allowed to read ``/proc/<pid>`` (we run as root).
"""
from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read().decode("ascii", "replace")
    # comm may contain spaces/parens: everything after the last ')' is
    # field 3 onwards (state).
    rest = raw[raw.rindex(")") + 2:].split()
    return rest  # rest[0] is field 3 ("state")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    f = _stat_fields(pid)
    utime, stime = int(f[11]), int(f[12])  # fields 14 and 15
    return (utime + stime) / CLK_TCK


def ppid(pid: int) -> int:
    return int(_stat_fields(pid)[1])  # field 4


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def status_kib(pid: int, key: str = "VmRSS") -> int:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rss_kib(pid: int) -> int:
    return status_kib(pid, "VmRSS")


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    total = sum(vals[:8])  # guest time is already included in user
    return total - idle, total


def descendants(root: int) -> list[int]:
    """All live descendant pids of ``root`` (breadth first)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            children.setdefault(ppid(int(name)), []).append(int(name))
        except (OSError, ValueError):
            continue
    out, todo = [], [root]
    while todo:
        p = todo.pop(0)
        for c in children.get(p, ()):
            out.append(c)
            todo.append(c)
    return out


def tree(root: int) -> list[int]:
    """``root`` and its live descendants: a server that forks workers is measured whole."""
    return [root] + descendants(root)


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and every live descendant (a child that exited is not
    counted: the servers measured here keep theirs for their whole life)."""
    total = 0.0
    for p in tree(root):
        try:
            total += cpu_seconds(p)
        except (OSError, ValueError):
            continue
    return total


def tree_rss_kib(root: int) -> int:
    """VmRSS of ``root`` plus that of its live descendants."""
    total = 0
    for p in tree(root):
        try:
            total += rss_kib(p)
        except (OSError, KeyError, ValueError):
            continue
    return total


def find_process(root: int, comm_prefix: str) -> int | None:
    """``root`` itself or its first descendant whose comm starts with
    ``comm_prefix`` (e.g. ``beam.smp`` under ``ejabberdctl``)."""
    for p in [root] + descendants(root):
        try:
            if comm(p).startswith(comm_prefix):
                return p
        except OSError:
            continue
    return None


class Sampler:
    """CPU/wall snapshot of a server pid, this process and the machine."""

    def __init__(self, server_pid: int | None):
        self.pid = server_pid

    def snap(self) -> dict:
        import resource
        import time
        ru = resource.getrusage(resource.RUSAGE_SELF)
        s = {
            "wall": time.perf_counter(),
            "self_cpu": ru.ru_utime + ru.ru_stime,
            "machine": machine_cpu(),
        }
        if self.pid:
            s["server_cpu"] = tree_cpu_seconds(self.pid)
            s["server_rss"] = tree_rss_kib(self.pid)
        return s

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        wall = b["wall"] - a["wall"]
        busy = b["machine"][0] - a["machine"][0]
        total = b["machine"][1] - a["machine"][1]
        d = {
            "wall_s": round(wall, 3),
            "loadgen_cpu_s": round(b["self_cpu"] - a["self_cpu"], 3),
            "loadgen_cpu_pct": round(100 * (b["self_cpu"] - a["self_cpu"]) / wall, 1) if wall > 0 else None,
            # 100% = every core busy
            "machine_busy_pct": round(100 * busy / total, 1) if total else None,
        }
        if "server_cpu" in a and "server_cpu" in b:
            cpu = b["server_cpu"] - a["server_cpu"]
            d["server_cpu_s"] = round(cpu, 3)
            # 100% = one core
            d["server_cpu_pct"] = round(100 * cpu / wall, 1) if wall > 0 else None
        return d

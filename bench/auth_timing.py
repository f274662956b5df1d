"""Does a failed SASL PLAIN login take as long for an unknown user as for a wrong password?

Run: PYTHONPATH=. .venv/bin/python bench/auth_timing.py [--tree DIR] [--rounds N]
Starts `xmppd` from DIR (default: this checkout) on SQLite with one account, then over STARTTLS
streams from loopback times N interleaved pairs of PLAIN attempts — the account with a wrong
password, and an unknown name — from sending `<auth/>` to reading `<failure/>`. The failed-login
throttle is set out of the way (it would delay both alike), unless --tree is an older checkout
that has no such keys. Prints median, p10 and p90 of each, in ms (docs/SECURITY.md).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import server_proc  # noqa: E402
from tests.harness.raw import RawClient  # noqa: E402
from tests.harness.server_proc import RunningServer, config_text  # noqa: E402

NO_THROTTLE = """
[limits]
exempt_networks = ["127.0.0.0/8"]
auth_delay_after = 1000000
auth_max_failures_per_ip = 1000000
auth_max_failures_per_account = 1000000
"""


async def attempt(c: RawClient, user: str) -> float:
    token = base64.b64encode(f"\0{user}\0wrong-password".encode()).decode()
    start = time.perf_counter()
    await c.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}"
                 "</auth>")
    await c.read_until(b"</failure>")
    return (time.perf_counter() - start) * 1000


async def measure(port: int, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"wrong password": [], "unknown user": []}
    c: RawClient | None = None
    for i in range(rounds):
        # four failures per stream (the fifth closes it)
        if i % 2 == 0:
            if c is not None:
                c.close()
            c = await RawClient.connect(port)
            await c.starttls()
        assert c is not None
        order = [("wrong password", "alice"), ("unknown user", f"nobody{i}")]
        if i % 2:
            order.reverse()
        for label, user in order:
            out[label].append(await attempt(c, user))
    if c is not None:
        c.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    tree = Path(args.tree).resolve()
    has_throttle = (tree / "xmppd" / "throttle.py").exists()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg = tmp / "xmppd.toml"
        cfg.write_text(config_text(tmp, f"sqlite:///{tmp / 'db.sqlite'}", "memory",
                                   NO_THROTTLE if has_throttle else "", modules="[modules.disco]\n"))
        env = dict(os.environ, PYTHONPATH=str(tree))
        srv = RunningServer(tmp=tmp, config=cfg, env=env)
        import subprocess
        done = subprocess.run([sys.executable, "-m", "xmppd.ctl", "--config", str(cfg), "register",
                               "alice", "localhost", "alice-pw"], cwd=tree, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        server_proc.REPO = tree         # the server runs from (and imports) that tree
        srv.start()
        try:
            asyncio.run(measure(srv.port, 20))          # warm-up (fake salts, caches)
            result = asyncio.run(measure(srv.port, args.rounds))
        finally:
            srv.stop()
    print(f"server code: {tree}")
    for label, values in result.items():
        q = statistics.quantiles(values, n=10)
        print(f"{label:15s} median {statistics.median(values):6.2f} ms  p10 {q[0]:6.2f}  "
              f"p90 {q[-1]:6.2f}  (n={len(values)})")


if __name__ == "__main__":
    main()

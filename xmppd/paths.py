# tests: tests/integration/test_packaging.py, tests/integration/test_ctl.py
"""Where the config file is when none is named: `--config`, else `$XMPPD_CONFIG`, else
`conf/xmppd.toml` under the current directory (a source checkout: `make run`), else
`/etc/xmppd/xmppd.toml` (an installed server), else the default config shipped inside the
package (`xmppd/data/xmppd.toml`, the same file as the checkout's conf/xmppd.toml, copied in
when the wheel is built), so `pip install xmppd` then `xmppd` just runs. Its relative paths
(var/…) are under the directory the server is started in."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

SYSTEM = Path("/etc/xmppd/xmppd.toml")
CHECKOUT = Path("conf/xmppd.toml")


def packaged_config() -> Path | None:
    """The default config inside the installed package (None in a source checkout that was
    never built: there conf/xmppd.toml next to the package is the same file)."""
    shipped = resources.files("xmppd").joinpath("data/xmppd.toml")
    if shipped.is_file():
        return Path(str(shipped))
    beside = Path(__file__).resolve().parents[1] / CHECKOUT
    return beside if beside.is_file() else None


def default_config() -> Path:
    env = os.environ.get("XMPPD_CONFIG")
    if env:
        return Path(env)
    for candidate in (CHECKOUT, SYSTEM):
        if candidate.is_file():
            return candidate
    return packaged_config() or CHECKOUT

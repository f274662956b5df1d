"""setuptools entry point (metadata in setup.cfg). The wheel carries the checkout's default
config, conf/xmppd.toml, as package data xmppd/data/xmppd.toml (xmppd/paths.py), so an
installed server finds one without the source tree."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithDefaultConfig(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "xmppd" / "data"
        target.mkdir(parents=True, exist_ok=True)
        (target / "xmppd.toml").write_bytes((ROOT / "conf" / "xmppd.toml").read_bytes())


setup(cmdclass={"build_py": BuildWithDefaultConfig})

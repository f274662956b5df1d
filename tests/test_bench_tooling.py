"""The comparison's tooling (bench/, `make bench`): what it runs xmppd with is the shipped
config with only ports and the load generator's limits changed, and a config xmppd accepts;
the table lands between its markers; bench files keep under 400 lines.  Nothing is timed."""
from __future__ import annotations

import copy
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import anchors  # noqa: E402
import report  # noqa: E402
import xmppd_server  # noqa: E402
from xmppd import config as xconfig  # noqa: E402

SHIPPED = tomllib.loads((ROOT / "conf" / "xmppd.toml").read_text())


def without_changes(cfg: dict, archive: bool) -> dict:
    """``cfg`` with what bench_config may change put back to the shipped values."""
    out = copy.deepcopy(cfg)
    for mine, theirs in zip(out["listeners"], SHIPPED["listeners"]):
        assert mine["port"] < 32768          # below the load generator's ephemeral ports
        assert mine["bind"] == "127.0.0.1"
        mine["port"], mine["bind"] = theirs["port"], theirs["bind"]
    for key in ("exempt_networks", "c2s_rate", "stanza_rate"):
        if key in SHIPPED.get("limits", {}):
            out["limits"][key] = SHIPPED["limits"][key]
        else:
            del out["limits"][key]
    if not archive:
        assert out["modules"]["mam"]["default"] == "never"
        out["modules"]["mam"]["default"] = SHIPPED["modules"]["mam"]["default"]
    return out


@pytest.mark.parametrize("archive", [True, False])
def test_bench_config_is_the_shipped_one(archive: bool) -> None:
    cfg, ports = xmppd_server.bench_config(SHIPPED, archive)
    assert without_changes(cfg, archive) == SHIPPED
    assert set(ports) == {lst["type"] for lst in SHIPPED["listeners"]}
    assert cfg["limits"]["c2s_rate"] == "off" and cfg["limits"]["stanza_rate"] == "off"


@pytest.mark.parametrize("archive", [True, False])
def test_bench_config_written_reads_back_and_is_valid(archive: bool) -> None:
    cfg, _ = xmppd_server.bench_config(SHIPPED, archive)
    text = xmppd_server.dumps(cfg)
    assert tomllib.loads(text) == cfg
    loaded = xconfig.from_dict(tomllib.loads(text))
    assert [lst.port for lst in loaded.listeners] == [lst["port"] for lst in cfg["listeners"]]


def test_toml_writer_quotes_and_nests() -> None:
    doc = {"a": {"s": 'x "y" \\ z', "n": 3, "b": False, "l": ["p", "q"], "e": {}},
           "t": [{"k": 1}, {"k": 2, "m": [{"x": "y"}]}]}
    assert tomllib.loads(xmppd_server.dumps(doc)) == doc


def test_prosody_account_matches_prosodyctl() -> None:
    # written by `prosodyctl register u1 localhost pw1` (Prosody 0.12.3, Debian 12)
    made = anchors.fields('return {\n\t["salt"] = "a2620800-50eb-4bdd-9e20-36d92dd9b072";\n'
                          '\t["server_key"] = "1b323415658b7cc87c83348460ecd7ce9b0c8905";\n'
                          '\t["stored_key"] = "287608aa4bf02ce3bac914955d315b722ea590b0";\n'
                          '\t["iteration_count"] = 10000;\n};\n')
    ours = anchors.fields(anchors.prosody_account("pw1", made["salt"], 10000))
    assert ours == made
    assert anchors.fields(anchors.prosody_account("pw2", made["salt"], 10000)) != made


def test_table_goes_between_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "PERF.md"
    doc.write_text(f"# P\n\nintro\n\n{report.BEGIN}\nold table\n{report.END}\n\n## Other\nkept\n")
    report.rewrite_doc(doc, f"{report.BEGIN}\nnew table\n{report.END}")
    text = doc.read_text()
    assert "new table" in text and "old table" not in text
    assert text.startswith("# P\n\nintro\n") and text.endswith("## Other\nkept\n")
    bare = tmp_path / "BARE.md"
    bare.write_text("# P\n\nintro\n\n## Other\n")
    report.rewrite_doc(bare, f"{report.BEGIN}\nt\n{report.END}")
    assert bare.read_text().index(report.BEGIN) < bare.read_text().index("## Other")


def test_medians_with_min_max_and_ratio() -> None:
    runs = lambda *v: [{"server_cpu_s_per_1000": x} for x in v]  # noqa: E731
    results = {"prosody": {"messages": runs(0.5, 0.4, 0.6)},
               "ejabberd": {"messages": runs(0.1, 0.3, 0.2)},
               "xmppd-nomam": {"messages": runs(0.1, 0.1, 0.4) + [{"error": "x"}]}}
    row = report.Row("m", False, "messages", "server_cpu_s_per_1000", 3).render(results)
    assert row is not None
    assert "0.500 (0.400–0.600)" in row and "0.200 (0.100–0.300)" in row
    assert "0.100 (0.100–0.400)" in row and row.endswith("| 0.50 |")


def test_bench_files_stay_under_400_lines() -> None:
    long = [f"{p.name}: {n}" for p in (ROOT / "bench").glob("*.py")
            if (n := len(p.read_text().splitlines())) > 400]
    assert not long, long

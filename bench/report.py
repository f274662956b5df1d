"""The comparison's table (bench/compare.py): medians of the rounds with min–max, ratios
xmppd / ejabberd, the configuration of every row, written between markers in
docs/PERFORMANCE.md."""
from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any, Callable

BEGIN = "<!-- make bench: begin (bench/report.py rewrites this block) -->"
END = "<!-- make bench: end -->"

OFF_CFG = "archive off: A"
ON_CFG = "archive on: B"
LOGIN_CFG = "C"
LEGEND = ("Configurations: **A** = Prosody and ejabberd without mod_mam, xmppd = the shipped "
          "conf/xmppd.toml with `[modules.mam] default = \"never\"`; **B** = Prosody and "
          "ejabberd with mod_mam archiving every message (default always; rooms archived: "
          "Prosody's mod_muc_mam, ejabberd's mam room option), xmppd = the shipped "
          "conf/xmppd.toml as is (archive always, rooms archived); **C** = Prosody and ejabberd "
          "without archive, xmppd = the shipped conf/xmppd.toml as is (the archive does not "
          "enter a login or an idle connection).")
# label of the server in each column, by the row's archive setting (None: login rows)
COLUMNS = {False: ("prosody", "ejabberd", "xmppd-nomam"),
           True: ("prosody+mam", "ejabberd+mam", "xmppd"),
           None: ("prosody", "ejabberd", "xmppd")}


def values(results: dict[str, dict[str, list[dict[str, Any]]]], label: str, scenario: str,
           key: str) -> list[float]:
    runs = results.get(label, {}).get(scenario, [])
    return [r[key] for r in runs if isinstance(r.get(key), (int, float)) and "error" not in r]


def num(v: float, digits: int) -> str:
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def spread(vals: list[float], digits: int) -> str:
    if not vals:
        return "–"
    med = statistics.median(vals)
    if len(vals) == 1:
        return num(med, digits)
    return f"{num(med, digits)} ({num(min(vals), digits)}–{num(max(vals), digits)})"


class Row:
    def __init__(self, title: str, archive: bool | None, scenario: str, key: str, digits: int,
                 scale: float = 1.0, extra: Callable[[list[dict[str, Any]]], str] | None = None
                 ) -> None:
        self.title, self.archive, self.scenario, self.key = title, archive, scenario, key
        self.digits, self.scale, self.extra = digits, scale, extra

    def config(self) -> str:
        return {False: OFF_CFG, True: ON_CFG, None: LOGIN_CFG}[self.archive]

    def render(self, results: dict[str, Any]) -> str | None:
        cells, meds = [], []
        for label in COLUMNS[self.archive]:
            vals = [v * self.scale for v in values(results, label, self.scenario, self.key)]
            cell = spread(vals, self.digits)
            if self.extra and vals:
                cell += self.extra(results.get(label, {}).get(self.scenario, []))
            cells.append(cell)
            meds.append(statistics.median(vals) if vals else None)
        if all(m is None for m in meds):
            return None
        ratio = f"{meds[2] / meds[1]:.2f}" if meds[1] and meds[2] is not None else "–"
        return f"| {self.title} | {self.config()} | " + " | ".join(cells) + f" | {ratio} |"


def cores(runs: list[dict[str, Any]]) -> str:
    pcts = [r["server_cpu_pct"] for r in runs if r.get("server_cpu_pct") is not None]
    return f"; {statistics.median(pcts) / 100:.2f} cores" if pcts else ""


def rate_title(results: dict[str, Any], archive: bool) -> str:
    rates = [r.get("offered_rate") for lab in COLUMNS[archive]
             for r in results.get(lab, {}).get("latency", []) if r.get("offered_rate")]
    at = f"{statistics.median(rates):,.0f} msg/s" if rates else "half the slowest peak"
    return f"p99 latency (ms) at {at}: half of the slowest server's peak"


def rows(results: dict[str, Any], a: Any) -> list[Row]:
    m = f"{a.pairs} pairs × {a.messages:,} messages, window {a.window}"
    return [
        Row(f"one-to-one messages, CPU-s per 1,000 ({m})", False, "messages",
            "server_cpu_s_per_1000", 3),
        Row(f"one-to-one messages, CPU-s per 1,000 ({m})", True, "messages",
            "server_cpu_s_per_1000", 3),
        Row("delivered msg/s at full load (cores used = CPU-s / wall)", False, "messages",
            "msgs_per_s", 0, extra=cores),
        Row("delivered msg/s at full load (cores used = CPU-s / wall)", True, "messages",
            "msgs_per_s", 0, extra=cores),
        Row(rate_title(results, False), False, "latency", "latency_ms_p99", 2),
        Row(rate_title(results, True), True, "latency", "latency_ms_p99", 2),
        Row(f"MUC, {a.occupants} occupants, CPU-s per 1,000 delivered stanzas (room archive "
            "off)", False, "muc", "server_cpu_s_per_1000", 3),
        Row(f"MUC, {a.occupants} occupants, CPU-s per 1,000 delivered stanzas (room archive "
            "on)", True, "muc", "server_cpu_s_per_1000", 3),
        Row("offline store + deliver, CPU-s per 1,000", False, "offline",
            "server_cpu_s_per_1000", 3),
        Row("offline store + deliver, CPU-s per 1,000", True, "offline",
            "server_cpu_s_per_1000", 3),
        Row("SCRAM-SHA-1 login, CPU-s per 1,000", None, "scram", "server_cpu_ms_per_login", 2),
        Row("PLAIN login (hashed passwords), CPU-s per 1,000", None, "plain",
            "server_cpu_ms_per_login", 2),
        Row(f"KiB per idle TLS connection ({a.idle:,})", None, "idle", "kib_per_conn", 1),
    ]


def after_row(results: dict[str, Any]) -> str | None:
    cells, ratios = [], []
    for label in COLUMNS[False]:
        fresh = values(results, label, "messages", "server_cpu_s_per_1000")
        after = results.get(label, {}).get("after", [])
        f = statistics.median(fresh) if fresh else None
        x = after[-1].get("server_cpu_s_per_1000") if after else None
        n = after[-1].get("logins_before") if after else None
        if f is None or x is None:
            cells.append("–")
            ratios.append(None)
            continue
        cells.append(f"{f:.3f} → {x:.3f} (after {n:,})")
        ratios.append(x)
    if all(r is None for r in ratios):
        return None
    ratio = f"{ratios[2] / ratios[1]:.2f}" if ratios[1] and ratios[2] is not None else "–"
    return ("| one-to-one messages, CPU-s per 1,000: fresh (the median above) → after that many "
            f"logins (last round) | {OFF_CFG} | " + " | ".join(cells) + f" | {ratio} |")


def table(results: dict[str, Any], a: Any) -> str:
    lines = ["| figure | configuration | Prosody | ejabberd | xmppd | xmppd / ejabberd |",
             "|---|---|---|---|---|---|"]
    for row in rows(results, a):
        line = row.render(results)
        if line:
            lines.append(line)
    extra = after_row(results)
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def med(results: dict[str, Any], label: str, scenario: str, key: str) -> float | None:
    vals = values(results, label, scenario, key)
    return statistics.median(vals) if vals else None


def goal(text: str, x: float | None, limit: float | None, unit: str = "") -> str:
    if x is None or limit is None:
        return f"- {text}: not measured in this run."
    verdict = "met" if x <= limit else f"**not met** (gap {x / limit:.2f}×)"
    return f"- {text}: {x:.3g}{unit} vs {limit:.3g}{unit}: {verdict}."


def goals(results: dict[str, Any]) -> list[str]:
    """Issue 18's goals, each as measured in this run."""
    cpu = "server_cpu_s_per_1000"
    on, off = med(results, "xmppd", "messages", cpu), med(results, "xmppd-nomam", "messages", cpu)
    anchors_on = [v for v in (med(results, "prosody+mam", "messages", cpu),
                              med(results, "ejabberd+mam", "messages", cpu)) if v is not None]
    after = results.get("xmppd-nomam", {}).get("after", [])
    ej_after = results.get("ejabberd", {}).get("after", [])
    kib = med(results, "xmppd", "idle", "kib_per_conn")
    return [
        "Issue 18's goals against this run (xmppd's median against the limit):",
        goal("SCRAM-SHA-1 login CPU ≤ ejabberd's", med(results, "xmppd", "scram",
             "server_cpu_ms_per_login"), med(results, "ejabberd", "scram",
                                              "server_cpu_ms_per_login")),
        goal("messages, shipped config, ≤ 2 × xmppd's archive-off", on,
             2 * off if off is not None else None),
        goal("messages, shipped config, below both anchors' archive-on", on,
             min(anchors_on) if anchors_on else None),
        goal("messages, archive off, ≤ ejabberd's (fresh)", off,
             med(results, "ejabberd", "messages", cpu)),
        goal("messages, archive off, ≤ ejabberd's (after the logins)",
             after[-1].get(cpu) if after else None, ej_after[-1].get(cpu) if ej_after else None),
        goal("MUC fan-out ≤ ejabberd's per delivered stanza (room archive off)",
             med(results, "xmppd-nomam", "muc", cpu), med(results, "ejabberd", "muc", cpu)),
        goal("offline store + deliver ≤ ejabberd's (archive off)",
             med(results, "xmppd-nomam", "offline", cpu), med(results, "ejabberd", "offline", cpu)),
        goal("p99 latency at half the slowest peak ≤ ejabberd's (archive off)",
             med(results, "xmppd-nomam", "latency", "latency_ms_p99"),
             med(results, "ejabberd", "latency", "latency_ms_p99"), " ms"),
        goal("memory ≤ 30 KiB per idle TLS connection (shipped config)", kib,
             30.0 if kib is not None else None, " KiB"),
        "- all cores (2 processes ≥ 1.6 × one): not part of this comparison; measured by"
        " bench/multiproc_bench.py (section \"Every core\" below has its figures and verdict).",
    ]


def losses(results: dict[str, Any]) -> list[str]:
    out = []
    for label, scen in results.items():
        for name, runs in scen.items():
            lost = sum(r.get("lost") or 0 for r in runs)
            errs = [r["error"][:120] for r in runs if "error" in r]
            failed = sum(r.get("failed") or 0 for r in runs)
            if lost or errs or failed:
                out.append(f"{label} {name}: lost {lost}, failed logins {failed}"
                           + (f", errors: {errs}" if errs else ""))
    return out


def block(results: dict[str, Any], a: Any, meta: dict[str, Any]) -> str:
    m = meta["machine"]
    notes = losses(results)
    busy = meta.get("background_busy") or []
    lines = [
        BEGIN, "",
        f"Server CPU per operation, medians of {a.rounds} interleaved rounds with min–max "
        "(every round runs each scenario on every server in turn, the order rotating, so drift "
        "on the machine hits all alike); ratio = xmppd's median / ejabberd's.  STARTTLS on every "
        "connection, SCRAM-SHA-1 unless said, all servers on 127.0.0.1.",
        "", table(results, a), "",
        f"- Date: {meta['date']}; {meta['duration_min']:.1f} min.  Machine: nproc {m['nproc']}, "
        f"{m['cpu']}, {m['mem']}; load average {meta['load_start']} at the start, "
        f"{meta['load_end']} at the end (other work shares the machine: CPU per operation is "
        "the figure that survives it, msg/s and latency do not)"
        + (f"; machine busy before a run, median {statistics.median(busy):.0f} %"
           if busy else "") + f".  {m['versions']}, Python {m['python']}.",
        f"- Command: `{meta['command']}`.",
        f"- Sizes: messages {a.pairs} pairs × {a.messages:,} at most, window {a.window}, "
        f"sending capped at {a.max_seconds:g} s (a slow server gets fewer messages, not a "
        f"longer run); latency {a.pairs} pairs for {a.latency_seconds:g} s at half of the "
        f"slowest peak of the same round and archive setting; MUC {a.occupants} occupants, "
        f"{a.muc_senders} senders × {a.muc_messages} messages; offline {a.offline_pairs} "
        f"receivers × {a.offline_messages} messages (CPU from the first send to the last "
        f"delivery, less the receivers' logins); logins {a.login_users} users × "
        f"{a.login_rounds} rounds after a warm-up round (PLAIN: {a.plain_users} users); idle "
        f"{a.idle:,} connections held {a.idle_hold:g} s.",
        "- " + LEGEND + "  Servers: " + "; ".join(meta["configs"]) + ".  xmppd's config is "
        "conf/xmppd.toml read and changed by bench/xmppd_server.py (ports; loopback exempt "
        "from the per-address limits and no per-session shaping, as the anchors run; "
        "archive-off: `[modules.mam] default = \"never\"`).",
    ]
    lines.append("- Losses and errors: " + ("; ".join(notes) if notes else "none") + ".")
    lines += [""] + goals(results) + ["", END]
    return "\n".join(lines)


def rewrite_doc(path: Path, text: str) -> None:
    doc = path.read_text()
    pat = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pat.search(doc):
        doc = pat.sub(lambda _m: text, doc, count=1)
    else:
        i = doc.find("\n## ")
        section = "\n## The comparison (`make bench`)\n\n" + text + "\n"
        doc = doc + section if i < 0 else doc[:i] + "\n" + section + doc[i:]
    path.write_text(doc)

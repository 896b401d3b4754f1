"""Rows, medians, ratios, targets, and the table and JSON they end up in."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clients import Measurement

__all__ = ["Row", "Target", "format_table", "summarise", "targets_summary", "write_json"]


@dataclass(frozen=True)
class Target:
    """A goal for one row: ``check(row, baseline)`` says met (True), missed, or n/a."""

    text: str
    check: Callable[[Row, Row | None], bool | None]


@dataclass
class Row:
    """One scenario x client line of the table, with the medians of its repetitions."""

    key: str  #: "scenario/client-variant", unique
    scenario: str
    label: str
    server: str
    count: int
    delay: float | None = None  #: one-way proxy delay, when proxied
    size_metrics: bool = False  #: report MB/s and memory growth (the large-message rows)
    baseline: str | None = None  #: key of the aiosmtplib row this one is compared with
    target: Target | None = None
    samples: list[Measurement] = field(default_factory=list)
    # filled by summarise()
    msgs_per_s: float | None = None
    cpu_us_per_msg: float | None = None
    rt_per_msg: float | None = None
    rtts_per_msg: float | None = None  #: wall time per message, in round-trip times
    mb_per_s: float | None = None
    mem_growth: float | None = None  #: peak RSS growth during the send / message size
    ratio: float | None = None  #: msgs/s (or MB/s) over the baseline's
    met: bool | None = None
    status: str = ""  #: "ok", "n/a: why", "error: what"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _metrics(row: Row, m: Measurement) -> dict[str, float | None]:
    sent = max(m.sent, 1)
    out: dict[str, float | None] = {
        "msgs_per_s": m.sent / m.elapsed if m.elapsed > 0 else None,
        "cpu_us_per_msg": m.cpu / sent * 1e6,
        "rt_per_msg": m.turns / sent if m.turns is not None else None,
        "rtts_per_msg": m.elapsed / sent / (2 * row.delay) if row.delay else None,
        "mb_per_s": None,
        "mem_growth": None,
    }
    if row.size_metrics and m.elapsed > 0:
        out["mb_per_s"] = m.message_bytes * m.sent / m.elapsed / 1e6
        if m.rss_base_kib is not None and m.rss_peak_kib is not None and m.message_bytes:
            growth = max(m.rss_peak_kib - m.rss_base_kib, 0) * 1024
            out["mem_growth"] = growth / m.message_bytes
    return out


def summarise(rows: Sequence[Row]) -> None:
    """Medians over each row's samples, then ratios against baselines, then targets."""
    by_key = {row.key: row for row in rows}
    for row in rows:
        good = [m for m in row.samples if m.unavailable is None and m.error is None]
        if not row.samples:
            row.status = row.status or "n/a: not run"
        elif any(m.unavailable for m in row.samples):
            row.status = f"n/a: {next(m.unavailable for m in row.samples if m.unavailable)}"
        elif not good or any(m.failed for m in row.samples):
            bad = next(m for m in row.samples if m.error or m.failed)
            row.status = f"error: {bad.failed} failed, {bad.error}"
        else:
            row.status = "ok"
        if not good:
            continue
        per_rep = [_metrics(row, m) for m in good]
        for name in per_rep[0]:
            setattr(row, name, _median([rep[name] for rep in per_rep]))
    for row in rows:
        base = by_key.get(row.baseline) if row.baseline else None
        metric = "mb_per_s" if row.size_metrics else "msgs_per_s"
        mine = getattr(row, metric)
        theirs = getattr(base, metric) if base is not None and base.ok else None
        if row.ok and mine and theirs:
            row.ratio = mine / theirs
        if row.target is not None:
            row.met = row.target.check(row, base) if row.ok else None


# -- the table -------------------------------------------------------------------------


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return format(value, ",.0f" if value >= 100 else ".1f")


def _columns(row: Row) -> list[str]:
    if not row.ok:
        return [row.label, str(row.count), row.status[:70], "", "", "", "", "", "", "", ""]
    growth = f"{row.mem_growth:.2f}x" if row.mem_growth is not None else "-"
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
    verdict = {True: "MET", False: "MISSED", None: "n/a"}[row.met] if row.target else ""
    return [
        row.label,
        str(row.count),
        "-" if row.size_metrics else _rate(row.msgs_per_s),
        _num(row.cpu_us_per_msg, ",.0f"),
        _num(row.rt_per_msg, ".2f"),
        _num(row.rtts_per_msg, ".2f"),
        _rate(row.mb_per_s),
        growth,
        ratio,
        row.target.text if row.target else "",
        verdict,
    ]


HEADERS = [
    "client",
    "msgs",
    "msgs/s",
    "CPU us/msg",
    "RT/msg",
    "RTTs/msg",
    "MB/s",
    "peak mem",
    "vs aiosmtplib",
    "target",
    "",
]


def format_table(rows: Sequence[Row], titles: dict[str, str]) -> str:
    """Plain-text table, one block per scenario."""
    cells = [_columns(row) for row in rows]
    widths = [len(h) for h in HEADERS]
    for line in cells:
        if line[3]:  # error rows span the metric columns; do not let them widen them
            widths = [max(w, len(c)) for w, c in zip(widths, line, strict=True)]
    right = {1, 2, 3, 4, 5, 6, 7, 8}

    def render(line: list[str]) -> str:
        if not line[3] and line[2]:  # status row
            return f"{line[0]:<{widths[0]}}  {line[1]:>{widths[1]}}  {line[2]}"
        parts = [
            f"{c:>{w}}" if i in right else f"{c:<{w}}"
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [render(HEADERS), "-" * (sum(widths) + 2 * len(widths))]
    current = None
    for row, line in zip(rows, cells, strict=True):
        if row.scenario != current:
            current = row.scenario
            out.append(f"\n{titles.get(current, current)}")
        out.append(render(line))
    return "\n".join(out)


def targets_summary(rows: Sequence[Row]) -> str:
    """One line per target: met / missed / n/a."""
    lines = []
    for row in rows:
        if row.target is None:
            continue
        verdict = {True: "MET", False: "MISSED", None: "n/a"}[row.met]
        got = f"{row.ratio:.2f}x" if row.ratio is not None else "no ratio"
        if row.rt_per_msg is not None and "RT" in row.target.text:
            got += f", {row.rt_per_msg:.2f} RT/msg"
        if row.mem_growth is not None:
            got += f", peak memory +{row.mem_growth:.2f}x message"
        status = "" if row.ok else f" ({row.status})"
        lines.append(f"  [{verdict:>6}] {row.key}: {row.target.text} -> {got}{status}")
    return "\n".join(lines)


def write_json(path: Path, rows: Sequence[Row], meta: dict[str, Any]) -> None:
    """Everything: settings, medians, ratios, verdicts and every sample."""
    data = {
        "meta": meta,
        "rows": [
            {
                **{k: v for k, v in asdict(row).items() if k not in ("target", "samples")},
                "target": row.target.text if row.target else None,
                "samples": [asdict(m) for m in row.samples],
            }
            for row in rows
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")

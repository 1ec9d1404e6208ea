"""Benchmark results: one :class:`Measurement` per row, printed as a table, saved as JSON and PNG.

Absolute times depend on the machine (and on whatever else runs on it); the ratios
between the provider and its baseline, measured side by side in the same run, are what
carry over, so every row has one.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    """One benchmark row: ours against a baseline, their ratio, the target and whether it is met."""

    key: str
    title: str
    ours_label: str
    ours: float
    baseline_label: str
    baseline: float
    unit: str
    ratio: float
    ratio_text: str
    target: str
    met: bool | None  # None: no target, informational
    details: dict[str, Any] = field(default_factory=dict)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def trimmed_mean(values: Sequence[float], cut: float = 0.1) -> float:
    """Mean without the lowest and highest ``cut`` fraction (robust to a noisy neighbour)."""
    ordered = sorted(values)
    k = int(len(ordered) * cut)
    kept = ordered[k : len(ordered) - k] or ordered
    return float(statistics.fmean(kept))


def _fmt(value: float, unit: str) -> str:
    if unit in ("requests", "req/min", "payouts"):
        return f"{value:,.0f} {unit}"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def _met(flag: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "n/a (informational)"}[flag]


def markdown_table(rows: Sequence[Measurement]) -> str:
    """The README table: measurement, ours, baseline, ratio, target, met."""
    lines = [
        "| Measurement | Ours | Baseline | Ratio | Target | Met? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in rows:
        lines.append(
            f"| {m.title} | {_fmt(m.ours, m.unit)} ({m.ours_label}) | {_fmt(m.baseline, m.unit)} "
            f"({m.baseline_label}) | {m.ratio_text} | {m.target} | {_met(m.met)} |"
        )
    return "\n".join(lines)


def environment(quick: bool) -> dict[str, Any]:
    """What the numbers were measured on."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "versions": {
            d: version(d)
            for d in (
                "apache-airflow",
                "stripe",
                "localstripe",
                "limits",
                "apache-airflow-providers-http",
                "apache-airflow-providers-dbt-cloud",
            )
        },
    }


def save_json(rows: Sequence[Measurement], env: dict[str, Any], path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "environment": env,
        "total_seconds": seconds,
        "measurements": [asdict(m) for m in rows],
        "markdown": markdown_table(rows),
    }
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")


def save_png(rows: Sequence[Measurement], path: Path, subtitle: str) -> bool:
    """One small panel per measurement: ours vs baseline, titled with the ratio. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cols = 3
    nrows = max(1, math.ceil(len(rows) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.9 * nrows), squeeze=False)
    colours = {True: "#2e9e5b", False: "#d0453a", None: "#7a7f87"}
    for ax, m in zip(axes.flat, rows, strict=False):
        bars = ax.bar(["ours", "baseline"], [m.ours, m.baseline], color=[colours[m.met], "#b8bcc4"])
        for bar, value in zip(bars, (m.ours, m.baseline), strict=True):
            ax.annotate(
                _fmt(value, m.unit),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        lines = [m.title, m.ratio_text, f"target: {m.target} -> {_met(m.met)}"]
        ax.set_title("\n".join(textwrap.fill(line, 58) for line in lines), fontsize=7.5)
        ax.set_xticks([0, 1], [m.ours_label[:34], m.baseline_label[:34]], fontsize=7)
        ax.set_ylabel(m.unit, fontsize=8)
        ax.margins(y=0.2)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    fig.suptitle(f"airflow-provider-stripe benchmarks ({subtitle})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

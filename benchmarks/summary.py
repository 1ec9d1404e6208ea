"""The README's benchmark figures, generated from the results files (never copied by hand).

``python -m benchmarks.summary --write`` renders one line per measurement of the last full
runs (``benchmarks/results/{benchmarks,deployment,warehouse,exports,batch_scale}.json``; a newer
``<name>-only-*.json`` run replaces the rows it re-measured) between the README's
``benchmarks:begin``/``end`` markers: the result, the target and whether it was met, as the
run computed it, and the day it was measured. ``--check`` exits 1 when the README differs
(``tests/unit/test_readme.py`` runs it) and warns when a results file is older than the last
change to the code it measures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
BEGIN, END = "<!-- benchmarks:begin (python -m benchmarks.summary --write) -->", "<!-- benchmarks:end -->"
RUNS = {
    "benchmarks": "`python -m benchmarks`",
    "deployment": "`python -m benchmarks.deployment` (real deployment: Postgres, LocalExecutor)",
    "warehouse": "`python -m benchmarks.warehouse`",
    "exports": "`python -m benchmarks.exports` (200 ms per page)",
    "batch_scale": "`python -m benchmarks.batch_scale`",
}
MEASURED_CODE = ("airflow_provider_stripe",)
"""What every benchmark measures: a results file older than its last change may be stale."""


@dataclass(frozen=True)
class Row:
    title: str
    result: str
    target: str
    met: bool | None


def _last_commit_day(*paths: str) -> str:
    """The day of the last commit touching ``paths`` (empty outside a git checkout)."""
    out = subprocess.run(
        ["git", "log", "-1", "--format=%cI", "--", *paths], cwd=REPO, capture_output=True, text=True, check=False
    )
    changed = out.stdout.strip()
    return datetime.fromisoformat(changed).astimezone(timezone.utc).date().isoformat() if changed else ""


def _when(doc: dict[str, Any], path: Path) -> str:
    """The day a results file was measured: its own record, else the commit that added it."""
    when = doc.get("environment", {}).get("when")
    return str(when)[:10] if when else (_last_commit_day(str(path)) or "unknown")


def _warehouse_rows(doc: dict[str, Any]) -> Iterator[Row]:
    export = doc["export"]
    yield Row(
        f"Export of {export['objects']:,} charges vs a bare SDK auto-paging loop",
        f"{export['ratio']:.2f}x the time ({export['ours_rows_per_s']:,.0f} vs {export['bare_rows_per_s']:,.0f} "
        f"rows/s), peak RSS +{export['ours_peak_bytes'] / 2**20:.1f} MiB "
        f"(+{export['ours_peak_bytes_tenth'] / 2**20:.1f} MiB for a tenth)",
        "<= 1.05x the time, flat memory",
        export["met"],
    )
    recon = doc["reconciliation"]
    yield Row(
        "Reconciliation requests per automatic payout",
        ", ".join(f"{r['transactions']:,} transactions: {r['requests']}" for r in recon),
        "ceil(transactions / 100), 1 lookup of the payout",
        all(r["met"] for r in recon),
    )


def _measurement_rows(doc: dict[str, Any]) -> dict[str, Row]:
    return {m["key"]: Row(m["title"], m["ratio_text"], m["target"], m["met"]) for m in doc.get("measurements", [])}


def runs() -> Iterator[tuple[str, str, list[Row]]]:
    """``(run, measured on, rows)`` per benchmark command, from its results files."""
    for name in RUNS:
        full = RESULTS / f"{name}.json"
        if not full.is_file():
            continue
        doc = json.loads(full.read_text())
        when = _when(doc, full)
        if name == "warehouse":
            yield name, when, list(_warehouse_rows(doc))
            continue
        rows = _measurement_rows(doc)
        days = {when}
        for partial in sorted(RESULTS.glob(f"{name}-only-*.json")):
            later = json.loads(partial.read_text())
            if _when(later, partial) >= when:
                rows.update(_measurement_rows(later))
                days.add(_when(later, partial))
        yield name, " and ".join(sorted(days)), list(rows.values())


def section() -> str:
    """The generated README block."""
    met = {True: "met", False: "**NOT met**", None: "informational"}
    lines = [BEGIN, "", "| Measurement | Result | Target | Met? |", "| --- | --- | --- | --- |"]
    notes = []
    for name, when, rows in runs():
        for row in rows:
            lines.append(f"| {row.title} | {row.result} | {row.target} | {met[row.met]} |")
        notes.append(f"{RUNS[name]}: measured {when}")
    lines += ["", "Runs: " + "; ".join(notes) + ".", "", END]
    return "\n".join(lines)


def stale() -> list[str]:
    """Results files measured before the last commit to the code they measure."""
    code_day = _last_commit_day(*MEASURED_CODE)
    if not code_day:
        return []
    return [
        f"{RUNS[name]} was measured {when}, before the last change to {'/'.join(MEASURED_CODE)} ({code_day}): rerun it"
        for name, when, _ in runs()
        if max(when.split(" and ")) < code_day
    ]


def _replace(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + section() + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.summary", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="rewrite the README block")
    group.add_argument("--check", action="store_true", help="exit 1 if the README block differs")
    args = parser.parse_args(argv)
    text = README.read_text()
    for warning in stale():
        print(f"warning: {warning}", file=sys.stderr)
    if args.write:
        README.write_text(_replace(text))
        return 0
    if _replace(text) != text:
        print("README.md's benchmark figures differ from benchmarks/results/: run python -m benchmarks.summary --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

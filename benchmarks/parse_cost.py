"""DAG-parse cost: what importing the provider's operators and sensor adds on top of ``airflow.sdk``.

Compared with ``apache-airflow-providers-http``'s ``HttpOperator`` and
``apache-airflow-providers-dbt-cloud``'s ``DbtCloudRunJobOperator``, each measured in a
fresh process forked from one that already imported ``airflow.sdk``
(:mod:`benchmarks.parse_probe`), variants interleaved, one warm-up each (it writes the
byte code), then the median of the repeats. One extra run under ``python -X importtime``
attributes our cost to modules, and the modules each variant adds are listed, so the
report says which heavy modules are (not) imported at parse time.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.env import REPO, child_env
from benchmarks.jobs import JobProcess
from benchmarks.parse_probe import BASELINE_MARK, example_dag_files, probe_once, provider_modules
from benchmarks.report import Measurement, median

TARGET_RATIO = 0.05
"""Goal: at most this fraction of what each baseline adds (issue 20: <= 0.05x HttpOperator)."""
BASELINES = {
    "http": ("apache-airflow-providers-http", "HttpOperator", "airflow.providers.http.operators.http"),
    "dbt": (
        "apache-airflow-providers-dbt-cloud",
        "DbtCloudRunJobOperator",
        "airflow.providers.dbt.cloud.operators.dbt",
    ),
}
HEAVY = ("stripe", "limits", "requests", "redis", "aiohttp", "jsonschema")


def _check_baselines_installed() -> None:
    missing = []
    for dist, _, _ in BASELINES.values():
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing.append(dist)
    if missing:
        raise SystemExit(
            "the DAG-parse benchmark compares with " + ", ".join(missing) + ", which is not installed: run "
            f"`uv pip install -p {sys.executable} " + " ".join(missing) + "` (see benchmarks/README.md)"
        )


def _third_party(modules: list[str]) -> list[str]:
    ours = ("airflow", "airflow_provider_stripe", "benchmarks")
    return sorted({m.split(".")[0] for m in modules} - set(ours))


def _importtime(modules: list[str]) -> dict[str, Any]:
    """Per-module self time (``-X importtime``) of what ``modules`` add after the baseline."""
    _, stderr = probe_once(modules, env=child_env(), python_flags=("-X", "importtime"))
    rows: list[tuple[float, str]] = []
    for line in stderr.split(BASELINE_MARK, 1)[-1].splitlines():
        if not line.startswith("import time:"):
            continue
        parts = [p.strip() for p in line[len("import time:") :].split("|")]
        if len(parts) == 3 and parts[0].isdigit():  # skip the header line
            rows.append((int(parts[0]) / 1000, parts[2]))
    rows.sort(reverse=True)
    return {
        "total_self_ms": round(sum(ms for ms, _ in rows), 2),
        "heaviest": [{"module": name, "self_ms": round(ms, 2)} for ms, name in rows[:8]],
        "note": "-X importtime itself slows imports down; use it to attribute, not to measure",
    }


def _without_fork(modules: list[str], runs: int) -> list[float]:
    """Milliseconds in fresh interpreters that import the baseline and then ``modules`` (no fork)."""
    return [round(probe_once(modules, env=child_env())[0]["seconds"] * 1000, 2) for _ in range(runs)]


def run(*, quick: bool, log_path: Path) -> list[Measurement]:
    _check_baselines_installed()
    ours_modules = provider_modules()
    variants: dict[str, dict[str, list[str]]] = {
        "ours": {"modules": ours_modules, "files": []},
        **{key: {"modules": [module], "files": []} for key, (_, _, module) in BASELINES.items()},
        "ours_example_dags": {"modules": [], "files": [str(p) for p in example_dag_files()]},
    }
    repeats = 7 if quick else 21
    samples: dict[str, list[float]] = {k: [] for k in variants}
    added: dict[str, list[str]] = {}
    with JobProcess("benchmarks.parse_probe", env=child_env(), cwd=REPO, log_path=log_path, timeout=600) as probe:
        for key, job in variants.items():  # warm-up: writes byte code, not counted
            added[key] = probe.run(job)["new_modules"]
        for _ in range(repeats):
            for key, job in variants.items():
                samples[key].append(probe.run(job)["seconds"] * 1000)
    ms = {k: median(v) for k, v in samples.items()}
    heavy_loaded = {h: [m for m in added["ours"] if m == h or m.startswith(f"{h}.")][:3] for h in HEAVY}
    heavy_loaded = {h: v for h, v in heavy_loaded.items() if v}
    stripe_free = "stripe" not in heavy_loaded
    details: dict[str, Any] = {
        "ours_modules": ours_modules,
        "samples_ms": {k: [round(x, 2) for x in v] for k, v in samples.items()},
        "median_ms": {k: round(v, 2) for k, v in ms.items()},
        "min_ms": {k: round(min(v), 2) for k, v in samples.items()},
        "modules_added": {k: len(v) for k, v in added.items()},
        "third_party_packages_added": {k: _third_party(v) for k, v in added.items()},
        "heavy_modules_imported_by_ours": heavy_loaded,
        "stripe_sdk_imported_at_parse_time": not stripe_free,
        "example_dags_ms": round(ms["ours_example_dags"], 2),
        "importtime_ours": _importtime(ours_modules),
        "ours_without_fork_ms": _without_fork(ours_modules, 3),
        "method": (
            "as Airflow's DAG processor: fork (after gc.freeze) of a process with airflow.sdk imported; median of "
            "interleaved repeats after a warm-up. ours_without_fork_ms: the same import in the process that "
            "imported the baseline (no copy-on-write page faults): a lower bound"
        ),
    }
    rows = []
    for key, (_, name, _) in BASELINES.items():
        ratio = ms["ours"] / ms[key]
        rows.append(
            Measurement(
                key=f"parse_cost_vs_{key}",
                title=f"DAG-parse cost vs {name}",
                ours_label="operators + sensor",
                ours=ms["ours"],
                baseline_label=name,
                baseline=ms[key],
                unit="ms",
                ratio=ratio,
                ratio_text=f"{ratio:.3f}x ({name} costs {1 / ratio:.0f}x more)",
                target=f"<= {TARGET_RATIO}x, no Stripe SDK at parse time",
                met=ratio <= TARGET_RATIO and stripe_free,
                details=details if key == "http" else {"see": "parse_cost_vs_http"},
            )
        )
    return rows

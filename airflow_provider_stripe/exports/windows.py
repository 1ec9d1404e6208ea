"""The day and time window a DAG run covers, also for manual runs without a logical date
(which lack ``ds`` and ``data_interval_*``): those fall back on ``dag_run.run_after``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from jinja2 import pass_context


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _run_after(context: Mapping[str, Any]) -> datetime:
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_after is None:
        raise ValueError("this task context has no dag_run.run_after: pass a task context (``**context``)")
    return _utc(run_after)


def run_day(context: Mapping[str, Any]) -> str:
    """The run's day (UTC, ``YYYY-MM-DD``): the logical date's, else ``run_after``'s."""
    logical = context.get("logical_date")
    return (_utc(logical) if logical is not None else _run_after(context)).strftime("%Y-%m-%d")


def day_window(context: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """The run's data interval; for a run without one, the last complete UTC day before ``run_after``."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return _utc(start), _utc(end)
    midnight = _run_after(context).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=1), midnight


MACROS: dict[str, Any] = {"run_day": pass_context(run_day), "day_window": pass_context(day_window)}
"""``user_defined_macros`` for a DAG: ``{{ run_day() }}`` and ``{{ day_window() }}`` in templates."""

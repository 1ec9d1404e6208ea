"""The export window of an ``@daily`` run on Airflow 3: empty, and the message says so in dates and what to use."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_stripe.errors import StripeInputError
from airflow_provider_stripe.operators.exports import resolve_window


def test_an_at_daily_run_gets_an_empty_window_named_in_iso_dates_with_the_timetable_to_use() -> None:
    from airflow.timetables.trigger import CronTriggerTimetable  # what Airflow 3 makes of schedule="@daily"

    interval = CronTriggerTimetable("@daily", timezone="UTC").infer_manual_data_interval(
        run_after=datetime(2026, 3, 4, tzinfo=timezone.utc)
    )
    context = {"data_interval_start": interval.start, "data_interval_end": interval.end}
    with pytest.raises(StripeInputError) as caught:
        resolve_window(context, None, None, ("created_gte", "created_lt"))  # type: ignore[arg-type]
    message = str(caught.value)
    assert "[2026-03-04T00:00:00+00:00, 2026-03-04T00:00:00+00:00) is empty" in message, message
    assert "CronDataIntervalTimetable('@daily', timezone='UTC')" in message and "1772582400" not in message

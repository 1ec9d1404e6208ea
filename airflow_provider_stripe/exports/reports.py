"""Stripe's Reporting API rules shared by the report operator and its trigger (no SDK import).

Runs are computed asynchronously (``pending`` -> ``succeeded``/``failed``), and only up to the
type's ``data_available_end``, which is checked first.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow_provider_stripe.compat import read_field
from airflow_provider_stripe.errors import StripeReportNotAvailableError

PENDING = "pending"


def _iso(epoch: Any) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).isoformat() if isinstance(epoch, int) else str(epoch)


def check_available(report_type: Any, interval_start: int, interval_end: int) -> None:
    """Raise :class:`StripeReportNotAvailableError` unless Stripe has data for the whole interval."""
    name = read_field(report_type, "id")
    start, end = read_field(report_type, "data_available_start"), read_field(report_type, "data_available_end")
    if isinstance(end, int) and interval_end > end:
        raise StripeReportNotAvailableError(
            f"Stripe has data for report type {name} up to {_iso(end)} only; the interval ends at "
            f"{_iso(interval_end)}. Stripe computes report data with a delay (hours, up to a day): retry later "
            "(give the task retries and a retry_delay), or end the interval earlier."
        )
    if isinstance(start, int) and interval_start < start:
        raise StripeReportNotAvailableError(
            f"Stripe has data for report type {name} from {_iso(start)} only; the interval starts at "
            f"{_iso(interval_start)}: start the interval at or after that."
        )


def run_event(run: Any) -> dict[str, Any] | None:
    """The trigger event of a finished report run, ``None`` while it is pending."""
    status = read_field(run, "status")
    run_id = read_field(run, "id")
    if status == PENDING:
        return None
    if status == "succeeded":
        result = read_field(run, "result")
        file_id = result if isinstance(result, str) else read_field(result, "id")
        return {"status": "success", "report_run_id": run_id, "file_id": file_id, "size": read_field(result, "size")}
    message = read_field(run, "error") or f"the report run ended with status {status!r}"
    return {"status": "failure", "report_run_id": run_id, "message": str(message)}

"""Run a Stripe report for the data interval and stream its file to storage."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.compat import AirflowException, AirflowFailException, conf, read_field
from airflow_provider_stripe.exports.lineage import LineageRecord, StripeLineageMixin, path_dataset, stripe_dataset
from airflow_provider_stripe.operators._base import StripeBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


class StripeReportRunOperator(StripeLineageMixin, StripeBaseOperator):
    """Create a Stripe report run for the run's data interval and download its result.

    Fails retryably while Stripe has no data for the interval yet, without retries when the run fails.

    :param report_type: e.g. ``balance_change_from_activity.itemized.3`` or
        ``payout_reconciliation.itemized.5``. Templated.
    :param path: where the result (CSV) goes: local path or object storage URL. Templated.
    :param interval_start: report interval start; default ``data_interval_start``. Templated.
    :param interval_end: report interval end; default ``data_interval_end``. Templated.
    :param payout: restrict to one payout (``po_...``, reports that accept it). Templated.
    :param columns: the report's columns, in order (default: the type's default columns).
    :param parameters: other report parameters (``timezone``, ``currency``,
        ``reporting_category``, ``connected_account``...). Templated.
    :param deferrable: wait in the triggerer (default from ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls of the run.
    :param report_timeout: seconds (or timedelta) to wait for the run before failing.
    :param storage_conn_id: connection for an object storage ``path``.

    Returns ``{"path", "size", "report_run_id", "file_id", "report_type", "interval_start",
    "interval_end", "account_id"}``.
    """

    template_fields: Sequence[str] = (
        *StripeBaseOperator.template_fields,
        "report_type",
        "path",
        "interval_start",
        "interval_end",
        "payout",
        "parameters",
        "poll_interval",
    )
    template_fields_renderers = {"parameters": "json"}
    ui_color = "#e3ddff"

    def __init__(
        self,
        *,
        report_type: str,
        path: str | os.PathLike[str] | ObjectStoragePath,
        interval_start: datetime | int | str | None = None,
        interval_end: datetime | int | str | None = None,
        payout: str | None = None,
        columns: Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | str = 30.0,
        report_timeout: float | timedelta = 3600.0,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report_type = report_type
        self.path = path
        self.path_template = path  # as the DAG wrote it: a rendered ``path`` may not climb out of its folders
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.payout = payout
        self.columns = list(columns) if columns else None
        self.parameters = parameters
        self.deferrable = deferrable
        self.poll_interval = poll_interval  # templated: a run may choose it ("{{ params.poll_seconds }}")
        timeout = report_timeout.total_seconds() if isinstance(report_timeout, timedelta) else float(report_timeout)
        if timeout <= 0 or (not isinstance(poll_interval, str) and self._poll_seconds() <= 0):
            raise ValueError("report_timeout and poll_interval must be positive")
        self.report_timeout = timeout
        self.storage_conn_id = storage_conn_id

    def _poll_seconds(self) -> float:
        """``poll_interval`` as seconds (it may arrive as a rendered template string)."""
        from airflow_provider_stripe.errors import StripeInputError

        try:
            seconds = float(self.poll_interval)
        except (TypeError, ValueError):
            seconds = -1.0
        if not seconds > 0:
            raise StripeInputError(f"{self.poll_interval!r}: pass a positive number of seconds", field="poll_interval")
        return seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_stripe.errors import StripeInputError
        from airflow_provider_stripe.exports.reports import check_available, run_event
        from airflow_provider_stripe.operators.exports import resolve_window
        from airflow_provider_stripe.storage import resolve

        if not isinstance(self.report_type, str) or not self.report_type.strip():
            raise StripeInputError(f"{self.report_type!r}: pass a Stripe report type", field="report_type")
        start, end = resolve_window(context, self.interval_start, self.interval_end, ("interval_start", "interval_end"))
        self.checked_account()
        resolve(self.path, self.storage_conn_id, template=self.path_template)  # validate before touching the network
        extra = dict(self.parameters or {})
        if not isinstance(self.parameters or {}, Mapping):
            raise StripeInputError(f"{self.parameters!r}: pass a dict of report parameters", field="parameters")
        clash = {"interval_start", "interval_end", "payout", "columns"} & set(extra)
        if clash:
            raise StripeInputError(
                f"set {', '.join(sorted(clash))} with the operator's own argument", field="parameters"
            )
        params: dict[str, Any] = {**extra, "interval_start": start, "interval_end": end}
        if self.payout:
            params["payout"] = self.payout
        if self.columns:
            params["columns"] = self.columns
        requests = self.hook.requests
        report_type = requests.report_type_retrieve(self.report_type)
        check_available(report_type, start, end)
        columns = list(self.columns or read_field(report_type, "default_columns") or [])
        run = requests.report_run_create({"report_type": self.report_type, "parameters": params})
        self.log.info("Created report run %s (%s, %s)", run.id, self.report_type, params)
        poll = self._poll_seconds()
        deadline = time.time() + self.report_timeout
        event = run_event(run)
        if event is None and self.deferrable:
            from airflow_provider_stripe.triggers.reports import StripeReportRunTrigger

            self.defer(
                trigger=StripeReportRunTrigger(
                    report_run_id=run.id,
                    stripe_conn_id=self.stripe_conn_id,
                    account_id=self.hook.account_id,
                    poll_interval=poll,
                    deadline=deadline,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.report_timeout + poll),
                kwargs={"interval": [start, end], "columns": columns},
            )
        while event is None:
            if time.time() >= deadline:
                event = {"status": "timeout", "report_run_id": run.id, "message": f"report run {run.id} still pending"}
                break
            time.sleep(min(poll, max(deadline - time.time(), 0)))
            run = requests.report_run_retrieve(run.id)
            event = run_event(run)
        return self.execute_complete(context, event, interval=[start, end], columns=columns)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        interval: Sequence[int] | None = None,
        columns: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Fail on a failed, timed-out or unreachable run; else stream its file to ``path``."""
        from airflow_provider_stripe.errors import StripeReportRunFailedError
        from airflow_provider_stripe.exports.formats import write_chunks
        from airflow_provider_stripe.storage import resolve

        status, run_id = event.get("status"), event.get("report_run_id")
        if status == "failure":
            raise AirflowFailException(
                f"Stripe report run {run_id} ({self.report_type}) failed: {event.get('message')}. "
                "Stripe would compute the same again: fix the parameters, then clear the task."
            ) from StripeReportRunFailedError(str(event.get("message")))
        if status != "success":
            raise AirflowException(f"waiting for Stripe report run {run_id} failed ({status}): {event.get('message')}")
        target = resolve(self.path, self.storage_conn_id, template=self.path_template)
        file_id = str(event["file_id"])
        size = write_chunks(target, self.hook.requests.file_contents(file_id))
        self.log.info("Report run %s: file %s, %d bytes, written to %s", run_id, file_id, size, target)
        self.stripe_lineage = LineageRecord(
            inputs=(stripe_dataset(self.hook.account_id, f"reporting/{self.report_type}"),),
            output=path_dataset(target),
            columns=tuple((name, "string") for name in columns),  # a CSV: every cell is text
            size=size,
        )
        start, end = interval or (None, None)
        return {
            "path": str(target),
            "size": size,
            "report_run_id": run_id,
            "file_id": file_id,
            "report_type": self.report_type,
            "interval_start": start,
            "interval_end": end,
            "account_id": self.hook.account_id,
        }

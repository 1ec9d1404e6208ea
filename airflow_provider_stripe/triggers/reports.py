"""StripeReportRunTrigger: wait for a Stripe report run in the triggerer, no worker slot held.

Fires one event, decided by :func:`airflow_provider_stripe.exports.reports.run_event`, or a
``timeout`` or (redacted) ``error`` one; the kwargs never hold a key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_stripe.compat import run_blocking
from airflow_provider_stripe.constants import DEFAULT_CONN_ID
from airflow_provider_stripe.errors import redact
from airflow_provider_stripe.exports.reports import run_event


class StripeReportRunTrigger(BaseTrigger):
    """Poll a report run until it succeeds, fails, or the deadline passes.

    :param report_run_id: the ``frr_...`` id.
    :param account_id: connected account (``Stripe-Account``); ``None``: the connection's.
    :param deadline: epoch seconds after which a ``timeout`` event fires (``None``: never).
    """

    def __init__(
        self,
        *,
        report_run_id: str,
        stripe_conn_id: str = DEFAULT_CONN_ID,
        account_id: str | None = None,
        poll_interval: float = 30.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.report_run_id = report_run_id
        self.stripe_conn_id = stripe_conn_id
        self.account_id = account_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = ("report_run_id", "stripe_conn_id", "account_id", "poll_interval", "deadline")
        return f"{type(self).__module__}.{type(self).__qualname__}", {k: getattr(self, k) for k in kwargs}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_stripe.hooks.stripe import StripeHook

        try:
            hook = StripeHook(self.stripe_conn_id, account_id=self.account_id)
            requests = await run_blocking(getattr, hook, "requests")  # reads the connection
            while True:
                run = await requests.report_run_retrieve_async(self.report_run_id)
                event = run_event(run)
                if event is not None:
                    yield TriggerEvent(event)
                    return
                now = time.time()
                if self.deadline is not None and now >= self.deadline:
                    message = f"report run {self.report_run_id} still pending at the deadline"
                    yield TriggerEvent({"status": "timeout", "report_run_id": self.report_run_id, "message": message})
                    return
                self.log.info("Report run %s is pending", self.report_run_id)
                left = self.poll_interval if self.deadline is None else min(self.poll_interval, self.deadline - now)
                await asyncio.sleep(max(left, 0))
        except Exception as exc:
            self.log.exception("Polling Stripe report run %s failed", self.report_run_id)
            message = redact(f"{type(exc).__name__}: {exc}")
            yield TriggerEvent({"status": "error", "report_run_id": self.report_run_id, "message": message})

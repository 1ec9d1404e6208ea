"""StripePayoutTrigger: wait for Stripe payouts in the triggerer, deciding with the sensor's
:class:`~airflow_provider_stripe.payouts.watch.PayoutWatch`; the kwargs never hold a key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_stripe.compat import run_blocking
from airflow_provider_stripe.constants import DEFAULT_CONN_ID
from airflow_provider_stripe.errors import redact
from airflow_provider_stripe.payouts.lookup import afetch_payouts
from airflow_provider_stripe.payouts.watch import PayoutWatch


class StripePayoutTrigger(BaseTrigger):
    """Poll Stripe until the payouts are paid, one of them fails, or the deadline passes; fire one event,
    ``status`` being ``success`` (``count``), ``failure`` (``failures``), ``timeout`` (the deadline passed;
    bounds ``dag.test()`` too, which runs triggers inline) or ``error`` (redacted).

    :param payout_ids: the ``po_...`` ids to wait for.
    :param account_id: connected account (``Stripe-Account``); ``None``: the connection's.
    :param settle_period: seconds after each paid payout's ``arrival_date`` before it counts.
    :param deadline: epoch seconds after which a ``timeout`` event fires (``None``: never).
    """

    def __init__(
        self,
        *,
        payout_ids: list[str],
        stripe_conn_id: str = DEFAULT_CONN_ID,
        account_id: str | None = None,
        poll_interval: float = 60.0,
        settle_period: float = 0.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.payout_ids = list(payout_ids)
        self.stripe_conn_id = stripe_conn_id
        self.account_id = account_id
        self.poll_interval = float(poll_interval)
        self.settle_period = float(settle_period)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = ("payout_ids", "stripe_conn_id", "account_id", "poll_interval", "settle_period", "deadline")
        return f"{type(self).__module__}.{type(self).__qualname__}", {k: getattr(self, k) for k in kwargs}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_stripe.hooks.stripe import StripeHook

        watch = PayoutWatch(tuple(self.payout_ids), self.settle_period)
        try:
            hook = StripeHook(self.stripe_conn_id, account_id=self.account_id)
            requests = await run_blocking(getattr, hook, "requests")  # reads the connection
            while True:
                polled = watch.to_poll(time.time())
                lookup = await afetch_payouts(requests, polled)
                verdict = watch.observe(polled, lookup.found, time.time())
                self.log.info("%s; %s", verdict.describe(), lookup.describe())
                if verdict.done:
                    yield TriggerEvent(verdict.as_event())
                    return
                now = time.time()
                if self.deadline is not None and now >= self.deadline:
                    left_ids = watch.to_poll(now)
                    message = f"{len(left_ids)} of {len(self.payout_ids)} payouts still not settled at the deadline: "
                    more = " ..." if len(left_ids) > 20 else ""
                    yield TriggerEvent({"status": "timeout", "message": message + ", ".join(left_ids[:20]) + more})
                    return
                left = self.poll_interval if self.deadline is None else min(self.poll_interval, self.deadline - now)
                await asyncio.sleep(left)
        except Exception as exc:
            self.log.exception("Polling Stripe payouts failed")
            yield TriggerEvent({"status": "error", "message": redact(f"{type(exc).__name__}: {exc}")})

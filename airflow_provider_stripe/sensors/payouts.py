"""StripePayoutSensor, in poke, reschedule or deferrable mode (then in
:class:`~airflow_provider_stripe.triggers.payouts.StripePayoutTrigger`), deciding with
:class:`~airflow_provider_stripe.payouts.watch.PayoutWatch`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_stripe.compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    conf,
)
from airflow_provider_stripe.constants import DEFAULT_CONN_ID
from airflow_provider_stripe.operators._base import DASHBOARD_LINKS

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_stripe.hooks.stripe import StripeHook
    from airflow_provider_stripe.payouts.watch import PayoutWatch

DEFAULT_POLL_INTERVAL = timedelta(seconds=60)
"""A payout's status changes a few times over days; each poll lists 100 payouts a request."""


class StripePayoutSensor(BaseSensorOperator):
    """Wait until every given Stripe payout is ``paid``; fail without retries if any is not.

    :param payout_ids: a ``po_...`` id, a list of ids, or ``StripePayoutBatchOperator``'s result
        (a dict whose per-item results carry ``payout_id``, or a list of such items). Templated.
    :param account_id: connected account of the payouts (``Stripe-Account``); default the connection's. Templated.
    :param settle_period: succeed only once this long (timedelta or seconds) has passed since each
        paid payout's ``arrival_date``, as a paid payout can still turn ``failed`` (which then fails
        the task). ``None``: succeed on ``paid``.
    :param deferrable: wait in the triggerer instead of on a worker.
    :param poll_interval: seconds (or timedelta) between polls, default 60 s; templated (a string
        is rendered when the task runs). Same setting as ``poke_interval``: give one of the two.

    Fails without retries naming each failed or canceled payout with its ``failure_code`` and
    ``failure_message``; returns ``{"status": "paid", "count": n, "payout_ids": [...]}``.
    """

    template_fields: Sequence[str] = ("payout_ids", "account_id", "poll_interval")
    ui_color = "#635bff"
    operator_extra_links = DASHBOARD_LINKS

    def __init__(
        self,
        *,
        payout_ids: Any,
        stripe_conn_id: str = DEFAULT_CONN_ID,
        account_id: str | None = None,
        settle_period: float | timedelta | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta | str | None = None,
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None and "poke_interval" in kwargs:
            raise ValueError("give poll_interval or poke_interval, not both (they are the same setting)")
        if "poke_interval" not in kwargs:
            # A template is rendered at run time (see execute); until then, the default.
            given = DEFAULT_POLL_INTERVAL if poll_interval is None or isinstance(poll_interval, str) else poll_interval
            kwargs["poke_interval"] = given
        super().__init__(**kwargs)
        self.poll_interval: float | timedelta | str | None = poll_interval
        self.payout_ids = payout_ids
        self.stripe_conn_id = stripe_conn_id
        self.account_id = account_id
        seconds = settle_period.total_seconds() if isinstance(settle_period, timedelta) else float(settle_period or 0)
        if seconds < 0:
            raise ValueError(f"settle_period must be >= 0 seconds, got {seconds}")
        self.settle_period = seconds
        self.deferrable = deferrable
        self._watch: PayoutWatch | None = None

    @cached_property
    def hook(self) -> StripeHook:
        """Built on first use, after templates are rendered (so ``account_id`` is final)."""
        from airflow_provider_stripe.hooks.stripe import StripeHook

        return StripeHook(self.stripe_conn_id, account_id=self.account_id or None)

    def _ids(self) -> tuple[str, ...]:
        from airflow_provider_stripe.payouts.watch import normalize_payout_ids

        return normalize_payout_ids(self.payout_ids)

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_provider_stripe.payouts.lookup import fetch_payouts
        from airflow_provider_stripe.payouts.watch import PayoutWatch, Verdict

        if self._watch is None:  # kept across pokes in poke mode; a reschedule starts afresh
            self._watch = PayoutWatch(self._ids(), self.settle_period)
        watch = self._watch
        if not watch.payout_ids:
            self.log.warning("No payout ids to wait for (empty input): nothing to do")
            return PokeReturnValue(is_done=True, xcom_value=Verdict("success", ()).result())
        polled = watch.to_poll(time.time())
        lookup = fetch_payouts(self.hook.requests, polled)
        self.log.info("%s", lookup.describe())
        verdict = watch.observe(polled, lookup.found, time.time())
        self.log.info("Stripe payouts: %s", verdict.describe())
        if verdict.outcome == "failure":
            raise AirflowFailException(verdict.describe())
        return PokeReturnValue(is_done=verdict.outcome == "success", xcom_value=verdict.result())

    def execute(self, context: Context) -> Any:
        if self.poll_interval is not None:  # rendered: seconds, as a number or text, or a timedelta
            value = self.poll_interval
            try:
                seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
            except (TypeError, ValueError):
                seconds = -1.0
            if not seconds > 0:
                raise AirflowFailException(f"poll_interval {value!r} is not a positive number of seconds")
            self.poke_interval = seconds
        if not self.deferrable:
            return super().execute(context)
        try:
            first = self.poke(context)  # already done? then no deferral at all
        except AirflowFailException as exc:
            if self.soft_fail or self.never_fail:  # as BaseSensorOperator.execute does
                raise AirflowSkipException(f"Skipping (soft_fail/never_fail): {exc}") from exc
            raise
        if first.is_done:
            return first.xcom_value
        from airflow_provider_stripe.triggers.payouts import StripePayoutTrigger

        assert self._watch is not None
        self.defer(
            trigger=StripePayoutTrigger(
                payout_ids=list(self._watch.payout_ids),
                stripe_conn_id=self.stripe_conn_id,
                account_id=self.account_id or None,
                poll_interval=self.poke_interval,
                settle_period=self.settle_period,
                deadline=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: return the result, or fail with the trigger's details."""
        from airflow_provider_stripe.payouts.watch import Verdict, describe_failures

        event = event or {}
        status = event.get("status")
        message = str(event.get("message") or "")
        self.log.info("Stripe payout trigger finished: %s %s", status, message)
        if status == "success":
            return Verdict("success", self._ids()).result()
        if status == "failure":
            raise AirflowFailException(describe_failures(event.get("failures") or []))
        if status == "timeout":
            raise AirflowSensorTimeout(f"Sensor has timed out: {message}")
        raise AirflowException(
            f"waiting for Stripe payouts failed: {message or event!r}. The task can be retried once Stripe is "
            "reachable and the connection is valid."
        )

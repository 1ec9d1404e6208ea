"""Create and cancel Stripe payouts, one or a batch, never paying twice (docs/payout-safety.md).

The work is in :mod:`airflow_provider_stripe.payouts`; key rules in :mod:`airflow_provider_stripe.hooks.idempotency`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.compat import task_state_store
from airflow_provider_stripe.operators._base import StripeMoneyOperator, summarize

REFERENCE_SCOPE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,100}")  # stored in payout metadata

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_stripe.payouts.batch import PayoutKeys
    from airflow_provider_stripe.payouts.keys import PayoutIdentity
    from airflow_provider_stripe.payouts.limits import BatchLimits
    from airflow_provider_stripe.payouts.recovery import CrossRun
    from airflow_provider_stripe.payouts.results import ResultSink
    from airflow_provider_stripe.payouts.sources import ValidatedBatch

PAYOUT_FIELDS: tuple[str, ...] = (
    "id",
    "amount",
    "currency",
    "status",
    "method",
    "arrival_date",
    "destination",
    "failure_code",
    "livemode",
)


class _PayoutOperatorBase(StripeMoneyOperator):
    """Payout engine wiring and cross-run protection: a protected reference is paid at most once in its
    scope, whichever run or DAG pays it. ``cross_run_protection`` (``None``: explicit references; ``True``:
    every item; ``False``: none), ``reference_scope`` (1-100 of ``A-Za-z0-9_.:-``; default: the whole account)
    and ``cross_run_lookback`` (default 7 days, at most 31): docs/payout-safety.md.
    """

    def __init__(
        self,
        *,
        cross_run_protection: bool | None = None,
        reference_scope: str | None = None,
        cross_run_lookback: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cross_run_protection = cross_run_protection
        self.reference_scope = reference_scope
        self.cross_run_lookback = cross_run_lookback

    def _check_cross_run(self) -> None:
        from airflow_provider_stripe.errors import StripeInputError
        from airflow_provider_stripe.payouts.recovery import MAX_CROSS_RUN_LOOKBACK

        if self.cross_run_protection not in (None, True, False):
            raise StripeInputError(
                f"{self.cross_run_protection!r}: use None (on for explicit references), True or False",
                field="cross_run_protection",
            )
        scope = self.reference_scope
        if scope is not None:
            if not isinstance(scope, str) or not REFERENCE_SCOPE_PATTERN.fullmatch(scope):
                raise StripeInputError(
                    f"{scope!r}: use 1-100 letters, digits or _.:- (or None: the whole Stripe account)",
                    field="reference_scope",
                )
            if self.cross_run_protection is False:
                raise StripeInputError(
                    "is set but cross_run_protection=False protects nothing: drop one of them",
                    field="reference_scope",
                )
        lookback = self.cross_run_lookback
        if lookback is not None and (
            not isinstance(lookback, timedelta) or not timedelta(0) < lookback <= MAX_CROSS_RUN_LOOKBACK
        ):
            raise StripeInputError(
                f"{lookback!r}: use a timedelta above zero and at most {MAX_CROSS_RUN_LOOKBACK.days} days (every try "
                "lists the account's payouts of the whole window)",
                field="cross_run_lookback",
            )

    def _keys(self, identity: PayoutIdentity, explicit_references: int, key_for: Any = None) -> PayoutKeys:
        """Each item's key and metadata: the task's cross-run protection, or none when it covers no item."""
        from airflow_provider_stripe.payouts.batch import PayoutKeys
        from airflow_provider_stripe.payouts.recovery import CROSS_RUN_LOOKBACK, CrossRun

        protect = self.cross_run_protection is True or (self.cross_run_protection is None and explicit_references)
        if not protect:
            return PayoutKeys(identity, None, key_for)
        cross_run = CrossRun(
            protect="all" if self.cross_run_protection is True else "explicit",
            lookback=self.cross_run_lookback or CROSS_RUN_LOOKBACK,
            reference_scope=self.reference_scope,
            account=self.hook.account_id,
            dag_id=identity.dag_id,
        )
        return PayoutKeys(identity, cross_run, key_for)

    @staticmethod
    def _describe_cross_run(cross_run: CrossRun | None) -> dict[str, Any]:
        if cross_run is None:
            return {"enabled": False}
        return {
            "enabled": True,
            "covers": cross_run.protect,
            "scope": sorted(cross_run.scope_names),
            "lookback_seconds": int(cross_run.lookback.total_seconds()),
        }

    def _pay(
        self,
        context: Context,
        keys: PayoutKeys,
        instructions: Any,
        count: int,
        sink: ResultSink,
        *,
        max_workers: int,
        on_failure: Any,  # checked by _check_arguments
    ) -> dict[str, list[str]]:
        """Create (or find) the payouts, results to ``sink``; return the protected references paid twice."""
        from airflow_provider_stripe.payouts.batch import PayoutEngine
        from airflow_provider_stripe.payouts.ledger import BatchLedger

        progress = BatchLedger(task_state_store(context))
        payouts = PayoutEngine(
            requests=self.hook.requests,
            identity=keys.identity,
            progress=progress,
            log=self.log,
            keys=keys,
            max_workers=max_workers,
            on_failure=on_failure,
        )
        payouts.run(instructions, count, sink)
        return payouts.paid_twice

    def _raise_if_failed(
        self,
        sink: ResultSink,
        value: dict[str, Any],
        publish_to: Context | None = None,
        paid_twice: dict[str, list[str]] | None = None,
    ) -> None:
        """Fail the task if any item failed or was paid twice, after publishing ``value`` to ``publish_to``'s XCom."""
        from airflow_provider_stripe.errors import StripeDuplicatePayoutError, StripePayoutError

        if (sink.failed_total or paid_twice) and publish_to is not None:
            publish_to["ti"].xcom_push(key="return_value", value=value)
        if paid_twice:
            raise StripeDuplicatePayoutError(paid_twice)
        if sink.failed_total:
            raise StripePayoutError.for_batch(value["summary"], sink.failures, sink.failed_total)


class StripeCreatePayoutOperator(_PayoutOperatorBase):
    """Send funds from the Stripe balance to a bank account or debit card, exactly once.

    :param amount: in minor units (``1250`` = 12.50 EUR), an ``int``, never rounded.
    :param currency: 3-letter ISO code (the balance's currency).
    :param method: ``standard`` (default) or ``instant``.
    :param destination: ``ba_...`` or ``card_...``; default: the currency's default external account.
    :param description: free text.
    :param statement_descriptor: up to 22 characters on the bank statement.
    :param source_type: ``bank_account``, ``card`` or ``fpx``.
    :param metadata: up to 45 string pairs (the provider adds
        :data:`~airflow_provider_stripe.payouts.keys.RESERVED_METADATA_KEYS`).
    :param reference: your stable name for it (e.g. a settlement id); default: a hash of its contents.
    :param idempotency_key: default derived from the scope and ``reference`` (protected), else from the
        task instance and the content hash; an explicit key is used as is.

    Also the arguments of :class:`_PayoutOperatorBase` (cross-run protection) and :class:`StripeMoneyOperator`.

    Returns ``{"id", "amount", "currency", "status", "reference", "outcome", "account_id", "livemode"}``;
    ``outcome``: ``created``, ``existing`` (an earlier try's) or ``already_paid_by_run`` (``id`` is the
    other run's payout, ``paid_by_run`` and ``paid_by_dag`` name it; nothing sent).
    """

    template_fields: Sequence[str] = (
        *StripeMoneyOperator.template_fields,
        "amount",
        "currency",
        "method",
        "destination",
        "description",
        "statement_descriptor",
        "source_type",
        "metadata",
        "reference",
    )
    template_fields_renderers = {"metadata": "json"}
    ui_color = "#9be3c4"

    def __init__(
        self,
        *,
        amount: int,
        currency: str,
        method: str | None = None,
        destination: str | None = None,
        description: str | None = None,
        statement_descriptor: str | None = None,
        source_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        reference: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.amount = amount
        self.currency = currency
        self.method = method
        self.destination = destination
        self.description = description
        self.statement_descriptor = statement_descriptor
        self.source_type = source_type
        self.metadata = metadata
        self.reference = reference

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_stripe.payouts.instructions import FIELDS, instruction_from_params
        from airflow_provider_stripe.payouts.keys import PayoutIdentity, explicit_key_function
        from airflow_provider_stripe.payouts.results import ResultSink

        self._check_cross_run()
        instruction = instruction_from_params(**{name: getattr(self, name) for name in FIELDS})
        identity = PayoutIdentity.from_context(context)
        key_for = explicit_key_function(str(self.idempotency_key)) if self.idempotency_key else None
        keys = self._keys(identity, int(instruction.has_explicit_reference), key_for)
        if self.is_dry_run:
            params = keys.params(instruction)
            return self.dry_run_result("payouts.create", params, idempotency_key=keys.key(instruction, 0))
        self.guard_live_mode("create a payout")
        sink = ResultSink(total=1, try_number=identity.try_number)
        paid_twice = self._pay(context, keys, [instruction], 1, sink, max_workers=1, on_failure="stop")
        value = sink.value()
        self._raise_if_failed(sink, value, paid_twice=paid_twice)
        row = value["results"][0]
        return {
            "id": row.get("payout_id"),
            "amount": row["amount"],
            "currency": row["currency"],
            "status": row.get("status"),
            "reference": row["reference"],
            "outcome": row["outcome"],
            "account_id": self.hook.account_id,
            "livemode": self.hook.config.livemode,
            **{name: row[name] for name in ("paid_by_run", "paid_by_dag") if name in row},
        }


class StripePayoutBatchOperator(_PayoutOperatorBase):
    """Create a batch of payouts exactly once, concurrently, within the connection's rate limit: every item
    is validated before the first request, then created once across retries, crashes and concurrent runs.

    :param payouts: a list of dicts (templated, or an XCom such as ``prepare.output``); a JSON array or
        JSON Lines file path or ObjectStoragePath URL; or a callable returning dicts (called at render
        time as ``fn(context=..., jinja_env=...)``). Each dict: ``amount`` (int, minor units), ``currency``,
        optionally ``reference`` (unique in the batch) and the other fields of docs/payout-safety.md.
    :param max_workers: payouts created concurrently, all within the connection's rate limit.
    :param on_failure: ``continue`` (default): attempt every item, then fail listing the failed ones;
        ``stop``: stop at the first failure (the rest ``not_attempted``).
    :param results_path: write each item's result to this JSON Lines file (templated); returned as a path.
    :param inline_results_limit: without ``results_path``, return results inline up to this many items;
        above it, only the failed ones.
    :param max_items: refuse a batch of more items (default ``None``: no limit).
    :param max_total: per-currency caps in minor units, e.g. ``{"eur": 5_000_000}``; not templated.
    :param approved_digest: pay only if the validated instructions have this
        :func:`~airflow_provider_stripe.payouts.summary.summarize_batch` ``digest`` (templated).

    Limits and the digest are checked before any request, in a dry run too (docs/payout-safety.md).

    Also the arguments of :class:`_PayoutOperatorBase` (cross-run protection) and :class:`StripeMoneyOperator`.

    Returns ``{"summary": {...}, "results": [...]}`` (:mod:`airflow_provider_stripe.payouts.results`):
    counts per outcome for this try, ``this_run`` for the whole run; never Stripe objects or keys.
    """

    template_fields: Sequence[str] = (
        *StripeMoneyOperator.template_fields,
        "payouts",
        "results_path",
        "approved_digest",
    )
    template_fields_renderers = {"payouts": "json"}
    ui_color = "#9be3c4"

    def __init__(
        self,
        *,
        payouts: Any,
        max_workers: int = 4,
        on_failure: str = "continue",
        results_path: Any = None,
        inline_results_limit: int = 1000,
        max_items: int | None = None,
        max_total: Mapping[str, int] | None = None,
        approved_digest: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.payouts = payouts
        self.max_workers = max_workers
        self.on_failure = on_failure
        self.results_path = results_path
        self.inline_results_limit = inline_results_limit
        self.max_items = max_items
        self.max_total = max_total
        self.approved_digest = approved_digest

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_stripe.payouts.keys import PayoutIdentity
        from airflow_provider_stripe.payouts.results import ResultSink
        from airflow_provider_stripe.payouts.sources import validate_batch

        limits = self._check_arguments()
        batch = validate_batch(
            self.payouts, context, on_error=lambda e: self.log.error("Invalid payout instruction: %s", e)
        )
        paid_twice: dict[str, list[str]] = {}
        with batch:
            identity = PayoutIdentity.from_context(context)
            self.log.info(
                "Payout batch %s: %d item(s), %s in total%s",
                identity.describe(),
                batch.count,
                batch.describe_totals(),
                " (DRY RUN: nothing is sent)" if self.is_dry_run else "",
            )
            limits.check(batch.count, batch.totals)  # before any request, listings included
            self._check_approved(batch)
            sink = ResultSink(
                total=batch.count,
                results_path=self.results_path or None,
                inline_limit=self.inline_results_limit,
                try_number=identity.try_number,
            )
            try:
                if self.is_dry_run:
                    extra = self._dry_run(batch, sink)
                else:
                    self.guard_live_mode("create payouts")
                    keys = self._keys(identity, batch.explicit_references)
                    paid_twice = self._pay(
                        context,
                        keys,
                        batch,
                        batch.count,
                        sink,
                        max_workers=self.max_workers,
                        on_failure=self.on_failure,
                    )
                    extra = {"dry_run": False, "cross_run_protection": self._describe_cross_run(keys.cross_run)}
                    if paid_twice:
                        extra["duplicate_payouts"] = paid_twice
            finally:
                sink.close()
        where = {"livemode": self.hook.config.livemode, "account_id": self.hook.account_id}
        value = sink.value(run=identity.describe(), **{**where, **extra})
        self.log.info("Payout batch done: %s", value["summary"])
        if not self.is_dry_run:
            self.log.info("Payout batch, the whole run: %s", sink.describe_run())
        self._raise_if_failed(sink, value, publish_to=context, paid_twice=paid_twice)
        return value

    def _check_arguments(self) -> BatchLimits:
        """Check the task's arguments (before reading the batch); return its limits."""
        from airflow_provider_stripe.errors import StripeInputError
        from airflow_provider_stripe.payouts.batch import ON_FAILURE_CHOICES
        from airflow_provider_stripe.payouts.limits import BatchLimits

        if self.idempotency_key:
            raise StripeInputError(
                "a batch derives one key per item (run, task, map index, reference); leave idempotency_key unset",
                field="idempotency_key",
            )
        if self.on_failure not in ON_FAILURE_CHOICES:
            raise StripeInputError(f"{self.on_failure!r}: use 'continue' or 'stop'", field="on_failure")
        if isinstance(self.max_workers, bool) or not isinstance(self.max_workers, int) or self.max_workers < 1:
            raise StripeInputError(f"{self.max_workers!r}: use an integer >= 1", field="max_workers")
        self._check_cross_run()
        return BatchLimits.from_arguments(self.max_items, self.max_total)

    def _check_approved(self, batch: ValidatedBatch) -> None:
        """Refuse a batch whose instructions are not the approved ones (``approved_digest``)."""
        from airflow_provider_stripe.errors import StripeBatchChangedError, StripeInputError

        approved = self.approved_digest
        if approved is None:
            return
        if not isinstance(approved, str) or not re.fullmatch(r"[0-9a-f]{64}", approved):
            raise StripeInputError(
                f"{approved!r:.80} is not a batch digest: pass summarize_batch()'s 'digest' (64 hex digits), or None",
                field="approved_digest",
            )
        if batch.digest != approved:
            raise StripeBatchChangedError(
                approved=approved, actual=batch.digest, count=batch.count, totals_text=batch.describe_totals()
            )
        self.log.info("Payout batch: the instructions are the approved ones (digest %s)", approved[:16])

    def _dry_run(self, batch: Any, sink: ResultSink) -> dict[str, Any]:
        from airflow_provider_stripe.payouts.batch import item_result
        from airflow_provider_stripe.validation import format_amount

        cfg = self.hook.config  # validated: a dry run also proves the connection is usable
        live_allowed = not cfg.livemode or cfg.allow_live_mode
        for instruction in batch:
            sink.add(item_result(instruction, "dry_run"))
            self.log.info(
                "DRY RUN, nothing sent: would pay out %s (%s)",
                format_amount(instruction.amount, instruction.currency),
                instruction.where(),
            )
        if not live_allowed:
            self.log.warning("A real run would be REFUSED: the connection holds a live key and does not allow it")
        return {"dry_run": True, "live_mode_allowed": live_allowed}


class StripeCancelPayoutOperator(StripeMoneyOperator):
    """Cancel a pending payout; its funds return to the available balance.

    Only a ``pending``, non-automatic payout can be; one already ``canceled`` (a lost answer?) counts as done.

    :param payout_id: ``po_...``, templated.

    Also the :class:`StripeMoneyOperator` arguments (``idempotency_key``: default from the task and payout id).

    Returns ``{"id", "amount", "currency", "status", "method", "arrival_date", ...}``.
    """

    template_fields: Sequence[str] = (*StripeMoneyOperator.template_fields, "payout_id")
    ui_color = "#f3c3b8"

    def __init__(self, *, payout_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.payout_id = payout_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_stripe.errors import StripeInputError, StripeRequestError
        from airflow_provider_stripe.validation import validate_object_id

        payout_id = validate_object_id(self.payout_id, field="payout_id", prefixes=("po_",))
        if self.is_dry_run:
            key = self.resolve_idempotency_key(context, "payouts.cancel", payout_id)
            return self.dry_run_result("payouts.cancel", {"payout": payout_id}, idempotency_key=key)
        self.guard_live_mode("cancel a payout")
        requests = self.hook.requests
        try:
            payout, _key = self.send_idempotent(
                context,
                "payouts.cancel",
                lambda k: requests.payouts_cancel(payout_id, k),
                key_parts=(payout_id,),
                fail_on_refusal=False,
            )
        except StripeRequestError as error:
            if error.http_status != 400:
                raise
            current = requests.payouts_retrieve(payout_id)
            status = summarize(current, ("status",))["status"]
            if status != "canceled":
                raise StripeInputError(
                    f"payout {payout_id} is {status!r}; Stripe can cancel only pending payouts (and not automatic "
                    f"ones): {error.stripe_message}",
                    field="payout_id",
                ) from error
            self.log.info("Payout %s was already canceled (by an earlier try?): nothing to do", payout_id)
            payout = current
        result = summarize(payout, PAYOUT_FIELDS, account_id=self.hook.account_id)
        self.log_movement("Canceled payout", int(result["amount"]), str(result["currency"]), payout_id)
        return result

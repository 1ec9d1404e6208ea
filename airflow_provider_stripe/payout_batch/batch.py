"""The payout batch: create a validated batch exactly once, concurrently, within the rate limit.

For each item, in order:

1. remembered as created in the task state store -> reported, nothing sent;
2. found by listing this run's payouts (metadata reference + run tag) -> reported,
   nothing sent (a found payout whose amount or currency differs is a *conflict*:
   the item fails and nothing is sent);
3. with cross-run protection (:class:`~airflow_provider_stripe.payout_batch.recovery.CrossRun`),
   found in the same listing as paid by *another* run of this DAG within the look-back ->
   ``already_paid_by_run`` (that run's id), nothing sent;
4. otherwise ``POST /v1/payouts`` through the provider's idempotent-request engine
   (:class:`~airflow_provider_stripe.idempotency.IdempotentRequests`, one request per
   item, per-item progress in a
   :class:`~airflow_provider_stripe.idempotency.BatchLedger`): the item's key at its
   generation; a previously refused item moves to a fresh generation, written to the
   state store before the request.

Answers (the engine's outcomes): a payout -> ``created`` (or ``existing`` if Stripe
replayed an earlier try's). A definitive refusal that Stripe *replayed* is sent again at
once under a fresh key; a refusal from a fresh execution fails the item (nothing paid;
the next try uses a fresh key). Anything else -- connection error, timeout, 5xx, 409,
429 after the SDK's own retries -- fails the item as *unknown*: the payout may exist, so
the next try reuses the same key and the listing finds it.

Run-level results: every payout of this run is attributed to the try that created it --
this try for ``created``; for one found, the ledger's record or, by its creation time,
the try timeline the ledger keeps (:meth:`~airflow_provider_stripe.idempotency.BatchLedger.try_that_created`).

Concurrency: a bounded thread pool of ``max_workers`` fed lazily from the spool (at most
``2 * max_workers`` items in flight, ``max_workers`` with ``on_failure="stop"``), so
memory does not grow with the batch; every
request first takes a slot from the connection's rate limiter (in the hook's client).
All bookkeeping -- state store writes, results, log lines -- happens in the calling
thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.errors import StripePayoutError as StripePayoutError  # re-exported
from airflow_provider_stripe.idempotency import (
    PAYOUT_SCOPE,
    REFERENCE_METADATA_KEY,
    Answer,
    Attempt,
    BatchLedger,
    IdempotentRequests,
    KeyFunction,
    PayoutIdentity,
)
from airflow_provider_stripe.payout_batch.instructions import PayoutInstruction
from airflow_provider_stripe.payout_batch.recovery import (
    CrossRun,
    PaidByRun,
    PayoutFacts,
    Reconciliation,
    find_existing,
)
from airflow_provider_stripe.payout_batch.results import ItemResult, ResultSink
from airflow_provider_stripe.validation import format_amount

if TYPE_CHECKING:
    from stripe import StripeClient

OnFailure = Literal["continue", "stop"]
ON_FAILURE_CHOICES: tuple[OnFailure, ...] = ("continue", "stop")


class PayoutEngine:
    """Runs one batch (or a single payout) for one run identity. See the module docstring.

    :param client: the hook's rate-limited ``StripeClient`` (for the target account).
    :param identity: the run identity (keys, metadata tag, listing window).
    :param progress: per-item progress, backed by the task state store when available.
    :param log: where the one-line-per-movement log goes.
    :param max_workers: concurrent requests (threads).
    :param on_failure: ``continue`` attempts every item; ``stop`` stops feeding new items
        at the first failure (in-flight ones finish) and reports the rest not attempted.
    :param key_for: ``(reference, generation) -> key``; default :meth:`PayoutIdentity.payout_key`.
    :param cross_run: refuse references paid by other runs of the DAG (``None``: off).
    """

    def __init__(
        self,
        *,
        client: StripeClient,
        identity: PayoutIdentity,
        progress: BatchLedger,
        log: logging.Logger | Any,
        max_workers: int = 4,
        on_failure: OnFailure = "continue",
        key_for: KeyFunction | None = None,
        cross_run: CrossRun | None = None,
    ) -> None:
        if on_failure not in ON_FAILURE_CHOICES:
            raise ValueError(f"on_failure={on_failure!r}: use 'continue' or 'stop'")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers={max_workers!r}: use an integer >= 1")
        self.client = client
        self.identity = identity
        self.progress = progress
        self.log = log
        self.max_workers = max_workers
        self.on_failure = on_failure
        self.cross_run = cross_run
        self.reconciliation: Reconciliation | None = None
        # Payouts are found by listing, so without a store a refused item jumps (walk=False).
        self.requests: IdempotentRequests[Any] = IdempotentRequests(
            identity=identity, scope=PAYOUT_SCOPE, ledger=progress, key_for=key_for
        )

    # -- public ------------------------------------------------------------------------------

    def run(self, instructions: Iterable[PayoutInstruction], count: int, sink: ResultSink) -> None:
        """Create every instruction's payout (or find it); results go to ``sink``. An empty batch sends nothing."""
        if count == 0:
            self.log.info("The batch has no payout instructions: nothing to pay, no request sent to Stripe")
            return
        self.requests.started = int(time.time()) - 1
        self.progress.load(count, self.identity.try_number)
        try:
            existing = self._reconcile(count)
            self._run(iter(instructions), existing, sink)
        finally:
            self.progress.flush(force=True)

    # -- steps -------------------------------------------------------------------------------

    def _reconcile(self, count: int) -> Mapping[str, PayoutFacts]:
        if self.progress.remembered and self.progress.resumed and self.progress.created_count() >= count:
            self.log.info(
                "Task state store: all %d payout(s) of this run were already created; no listing needed", count
            )
            return {}
        since = self.identity.window_start(self.progress.first_attempt)
        other_runs_since = None
        if self.cross_run is not None and self.progress.first_attempt is not None:
            other_runs_since = int((self.progress.first_attempt - self.cross_run.lookback).timestamp())
        result = find_existing(self.client, self.identity, since, other_runs_since=other_runs_since)
        self.reconciliation = result
        self.log.info(
            "Looked for payouts of %s created since %s: %d listed (%d page(s)), %d of this run found",
            self.identity.describe(),
            datetime.fromtimestamp(min(since, other_runs_since or since), timezone.utc).isoformat(),
            result.listed,
            result.pages,
            len(result.found),
        )
        if other_runs_since is not None:
            self.log.info(
                "Cross-run protection: %d reference(s) paid by other runs of DAG %r since %s",
                len(result.other_runs),
                self.identity.dag_id,
                datetime.fromtimestamp(other_runs_since, timezone.utc).isoformat(),
            )
        for reference, ids in result.duplicates.items():
            self.log.error(
                "Reference %r already has %d payouts in this run (%s): check them in the Stripe Dashboard; no "
                "further payout is created for it",
                reference,
                len(ids),
                ", ".join(ids),
            )
        return result.found

    def _run(self, items: Iterator[PayoutInstruction], existing: Mapping[str, PayoutFacts], sink: ResultSink) -> None:
        # A little queue keeps every worker busy; with on_failure="stop" nothing may wait
        # behind a failure, so only as many items as workers are in flight.
        window = self.max_workers if self.on_failure == "stop" else 2 * self.max_workers
        stop = False
        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="stripe-payout")
        in_flight: dict[Future[Answer[Any]], PayoutInstruction] = {}
        try:
            while True:
                while not stop and len(in_flight) < window:
                    instruction = next(items, None)
                    if instruction is None:
                        break
                    attempt = self._plan(instruction, existing, sink)
                    if attempt is not None:
                        in_flight[pool.submit(self._create, instruction, attempt)] = instruction
                    elif self.on_failure == "stop" and sink.counts["failed"]:
                        stop = True
                if not in_flight:
                    break
                done, _ = wait(in_flight, timeout=self.progress.flush_interval, return_when=FIRST_COMPLETED)
                for future in done:
                    instruction = in_flight.pop(future)
                    follow_up = self._settle(instruction, future.result(), sink)
                    if follow_up is not None:
                        in_flight[pool.submit(self._create, instruction, follow_up)] = instruction
                    elif self.on_failure == "stop" and sink.counts["failed"]:
                        stop = True
                self.progress.flush()
            if stop:
                for instruction in items:
                    sink.add(item_result(instruction, "not_attempted"))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _plan(
        self, instruction: PayoutInstruction, existing: Mapping[str, PayoutFacts], sink: ResultSink
    ) -> Attempt | None:
        """Decide an item without a request if possible; else return the engine's attempt to send."""
        reference = instruction.reference
        state = self.progress.get(reference)
        if state is not None and state.code == "ok":
            sink.add(item_result(instruction, "existing", payout_id=state.object_id, created_by_try=state.made_by))
            self._log_movement("Payout already created (task state store)", instruction, state.object_id, None)
            return None
        found = existing.get(reference)
        if found is None:
            other = self._paid_by_other_run(instruction)
            if other is not None:
                self._refuse_paid_by_other_run(instruction, other, sink)
                return None
            return self.requests.plan(reference)
        if (found.amount, found.currency) != (instruction.amount, instruction.currency):
            message = (
                f"payout {found.id} already exists for this reference in this run with "
                f"{format_amount(found.amount, found.currency)}, but the instruction now says "
                f"{format_amount(instruction.amount, instruction.currency)}; nothing was sent"
            )
            error = {
                "type": "conflict",
                "definitive": True,
                "message": message,
                "next": "to pay a difference, add an item with a new reference",
            }
            sink.add(item_result(instruction, "failed", payout_id=found.id, status=found.status, error=error))
            self.log.error("%s: %s", instruction.where(), message)
            return None
        made_by = self.progress.try_that_created(found.created, self.identity.try_number)
        self.progress.record(reference, state.generation if state else 0, "ok", found.id, made_by)
        sink.add(item_result(instruction, "existing", payout_id=found.id, status=found.status, created_by_try=made_by))
        self._log_movement("Payout already created (found in Stripe)", instruction, found.id, found.status)
        return None

    def _paid_by_other_run(self, instruction: PayoutInstruction) -> PaidByRun | None:
        """The payout another run of this DAG made for this item's reference, if protection covers the item."""
        if self.cross_run is None or self.reconciliation is None:
            return None
        if not self.cross_run.covers(instruction.has_explicit_reference):
            return None
        return self.reconciliation.other_runs.get(instruction.reference)

    def _refuse_paid_by_other_run(self, instruction: PayoutInstruction, other: PaidByRun, sink: ResultSink) -> None:
        payout = other.payout
        sink.add(
            item_result(
                instruction,
                "already_paid_by_run",
                payout_id=payout.id,
                status=payout.status,
                paid_by_run=other.run_id,
            )
        )
        self.log.warning(
            "NOT paid, %s: run %r of DAG %r already paid this reference (payout %s, %s, status %s); nothing was "
            "sent. To pay it anyway, give the item a new reference or set cross_run_protection=False",
            instruction.where(),
            other.run_id,
            self.identity.dag_id,
            payout.id,
            format_amount(payout.amount, payout.currency),
            payout.status,
        )

    def _create(self, instruction: PayoutInstruction, attempt: Attempt) -> Answer[Any]:
        """One ``POST /v1/payouts`` (worker thread): never raises, returns the answer."""
        params = instruction.create_params(self.identity.stamp(instruction.reference))
        return self.requests.send(
            attempt,
            lambda key: self.client.v1.payouts.create(params, {"idempotency_key": key}),  # type: ignore[arg-type]
            f"payout creation ({instruction.where()})",
            contain=True,  # e.g. a rate-limit wait beyond its bound: outcome unknown
        )

    def _settle(self, instruction: PayoutInstruction, answer: Answer[Any], sink: ResultSink) -> Attempt | None:
        """Record an answer (calling thread); return a follow-up attempt under a fresh key, if any."""
        settled = self.requests.settle(answer, self.log)
        if isinstance(settled, Attempt):
            return settled
        if settled.error is None:
            payout = PayoutFacts.of(settled.result)
            earlier = settled.outcome == "existing"
            made_by: int | None = self.identity.try_number
            if earlier:
                made_by = self.progress.try_that_created(payout.created, self.identity.try_number)
                self.progress.record(instruction.reference, settled.attempt.generation, "ok", payout.id, made_by)
            sink.add(
                item_result(
                    instruction, settled.outcome, payout_id=payout.id, status=payout.status, created_by_try=made_by
                )
            )
            verb = "Payout already created (Stripe replayed an earlier request)" if earlier else "Created payout"
            self._log_movement(verb, instruction, payout.id, payout.status)
            return None
        error = settled.error
        details = error.as_dict()
        # Definitive: a retry under any key cannot change the answer, so Airflow must not retry it.
        details["definitive"] = settled.outcome == "refused" or (
            error.error_type == "idempotency_error" and error.http_status == 400
        )
        if settled.outcome == "refused":
            details["next"] = "Stripe refused it and nothing was paid; fix the cause, then re-run: a fresh key is used"
        elif error.error_type == "idempotency_error" and error.http_status == 400:
            details["next"] = (
                "this reference's key was used earlier in this run with other parameters (the instruction "
                "changed?); a payout may exist: check payouts with metadata "
                f"{REFERENCE_METADATA_KEY}={instruction.reference!r}, and use a new reference to pay anyway"
            )
        else:
            details["next"] = (
                "outcome unknown (the payout may exist); a retry reuses the same key and finds it, so it is "
                "never paid twice"
            )
        sink.add(item_result(instruction, "failed", error=details))
        self.log.error("%s: %s -> %s", instruction.where(), error, details["next"])
        return None

    def _log_movement(
        self, verb: str, instruction: PayoutInstruction, payout_id: str | None, status: str | None
    ) -> None:
        self.log.info(
            "%s %s: %s (reference %r%s)",
            verb,
            format_amount(instruction.amount, instruction.currency),
            payout_id,
            instruction.reference,
            f", status {status}" if status else "",
        )


def item_result(instruction: PayoutInstruction, outcome: Any, **fields: Any) -> ItemResult:
    return ItemResult(
        index=instruction.index,
        reference=instruction.reference,
        outcome=outcome,
        amount=instruction.amount,
        currency=instruction.currency,
        **fields,
    )

"""The payout batch: create a validated batch exactly once, concurrently, within the rate limit (the
rules: docs/payout-safety.md). A bounded pool feeds lazily from the spool; all bookkeeping runs in the
calling thread; keys used by another run are settled by one listing after the pool drains."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.hooks.idempotency import Answer, Attempt, IdempotentRequests
from airflow_provider_stripe.payouts.instructions import PayoutInstruction
from airflow_provider_stripe.payouts.keys import (
    KEY_LIFETIME,
    PAYOUT_SCOPE,
    REFERENCE_METADATA_KEY,
    WINDOW_SLACK,
    KeyFunction,
    PayoutIdentity,
    ReferenceScope,
)
from airflow_provider_stripe.payouts.ledger import BatchLedger
from airflow_provider_stripe.payouts.recovery import CrossRun, PaidByRun, PayoutFacts, PayoutListing, find_existing
from airflow_provider_stripe.payouts.results import ItemResult, ResultSink
from airflow_provider_stripe.validation import format_amount

if TYPE_CHECKING:
    from airflow_provider_stripe.hooks.requests import StripeRequests

OnFailure = Literal["continue", "stop"]
ON_FAILURE_CHOICES: tuple[OnFailure, ...] = ("continue", "stop")

CONTENTION_ROUNDS = 3
"""Listings (each followed by a send of the next generation) that settle contended items in one try."""


@dataclass(frozen=True)
class PayoutKeys:
    """Which key and metadata each item is sent with; ``key_for`` (a single payout's key) replaces derived keys."""

    identity: PayoutIdentity
    cross_run: CrossRun | None = None
    key_for: KeyFunction | None = None

    def scope_of(self, instruction: PayoutInstruction) -> ReferenceScope | None:
        """The scope protecting an item across runs (``None``: unprotected, or a user-given key)."""
        if self.cross_run is None or self.key_for is not None:
            return None
        return self.cross_run.scope_for(instruction.has_explicit_reference)

    def key(self, instruction: PayoutInstruction, generation: int) -> str:
        """The idempotency key of an item at ``generation``. Never log it."""
        if self.key_for is not None:
            return self.key_for(instruction.reference, generation)
        scope = self.scope_of(instruction)
        if scope is not None:
            return scope.key(instruction.reference, generation)
        return self.identity.payout_key(instruction.reference, generation)

    def params(self, instruction: PayoutInstruction) -> dict[str, Any]:
        """The ``POST /v1/payouts`` parameters of an item, metadata stamped."""
        return instruction.create_params(self.identity.stamp(instruction.reference, self.scope_of(instruction)))


class PayoutEngine:
    """Runs one batch (or a single payout) for one run identity; the operator checked its arguments."""

    def __init__(
        self,
        *,
        requests: StripeRequests,
        identity: PayoutIdentity,
        progress: BatchLedger,
        log: logging.Logger | Any,
        max_workers: int = 4,
        on_failure: OnFailure = "continue",
        keys: PayoutKeys,
    ) -> None:
        self.stripe = requests
        self.identity = identity
        self.progress = progress
        self.log = log
        self.max_workers = max_workers
        self.on_failure = on_failure
        self.keys = keys
        self.cross_run = keys.cross_run
        self.paid_twice: dict[str, list[str]] = {}
        """Protected references of this batch with more than one payout that moved money: payout ids."""
        self._contended: list[tuple[PayoutInstruction, Attempt]] = []
        self._contention = False
        self._created_protected: set[str] = set()
        self.requests: IdempotentRequests[Any] = IdempotentRequests(
            identity=identity, scope=PAYOUT_SCOPE, ledger=progress, key_for=keys.key_for
        )

    def run(self, instructions: Iterable[PayoutInstruction], count: int, sink: ResultSink) -> None:
        """Create every instruction's payout (or find it); results go to ``sink``. An empty batch sends nothing."""
        if count == 0:
            self.log.info("The batch has no payout instructions: nothing to pay, no request sent to Stripe")
            return
        self.requests.started = int(time.time()) - 1
        self.progress.load(self.identity.try_number)
        try:
            listing = self._reconcile(count)
            self._run(
                iter(instructions),
                lambda i: None if self._decide(i, listing, sink) else self.requests.plan(i.reference),
                sink,
            )
            for _round in range(CONTENTION_ROUNDS):
                if not self._contended:
                    break
                self._settle_contended(sink)
            for instruction, _attempt in self._contended:
                error = {
                    "type": "contended",
                    "message": f"other runs kept sending this reference's key ({CONTENTION_ROUNDS} rounds)",
                    "next": "outcome unknown (a payout may exist); a retry lists payouts again and never pays it twice",
                }
                sink.add(item_result(instruction, "failed", error=error))
                self.log.error("%s: %s -> %s", instruction.where(), error["message"], error["next"])
            self._contended = []
            self._check_paid_twice()
        finally:
            self.progress.flush(force=True)

    def _reconcile(self, count: int) -> PayoutListing | None:
        if self.progress.remembered and self.progress.resumed and self.progress.created_count() >= count:
            self.log.info(
                "Task state store: all %d payout(s) of this run were already created; no listing needed", count
            )
            return None
        since = self.identity.window_start(self.progress.first_attempt)
        other_runs_since = None
        if self.cross_run is not None and self.progress.first_attempt is not None:
            other_runs_since = int((self.progress.first_attempt - self.cross_run.lookback).timestamp())
        result = self._list(since, other_runs_since)
        if other_runs_since is not None:
            self.log.info(
                "Cross-run protection: %d protected reference(s) paid by other runs since %s",
                len(result.other_runs),
                datetime.fromtimestamp(other_runs_since, timezone.utc).isoformat(),
            )
        return result

    def _list(self, since: int, other_runs_since: int | None) -> PayoutListing:
        result = find_existing(
            self.stripe, self.identity, since, cross_run=self.cross_run, other_runs_since=other_runs_since
        )
        self.log.info(
            "Looked for payouts of %s created since %s: %d listed (%d page(s)), %d of this run found",
            self.identity.describe(),
            datetime.fromtimestamp(min(since, other_runs_since or since), timezone.utc).isoformat(),
            result.listed,
            result.pages,
            len(result.found),
        )
        return result

    def _run(
        self, items: Iterator[PayoutInstruction], plan: Callable[[PayoutInstruction], Attempt | None], sink: ResultSink
    ) -> None:
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
                    attempt = plan(instruction)
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

    def _decide(self, instruction: PayoutInstruction, listing: PayoutListing | None, sink: ResultSink) -> bool:
        """Report an item the ledger or a listing already accounts for; ``False`` when it must be sent."""
        reference = instruction.reference
        state = self.progress.get(reference)
        if listing is not None and reference in listing.duplicates:
            self.paid_twice[reference] = listing.duplicates[reference]
        if state is not None and state.code == "ok":
            sink.add(item_result(instruction, "existing", payout_id=state.object_id, created_by_try=state.made_by))
            self._log_movement("Payout already created (task state store)", instruction, state.object_id, None)
            return True
        found = listing.found.get(reference) if listing is not None else None
        if found is None:
            scope = self.keys.scope_of(instruction)  # the payout another task instance made in this item's scope
            other = None if scope is None or listing is None else listing.other_runs.get((scope.name, reference))
            if other is None:
                return False
            self._refuse_paid_by_other_run(instruction, other, sink)
            return True
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
            return True
        made_by = self.progress.try_that_created(found.created, self.identity.try_number)
        self.progress.record(reference, state.generation if state else 0, "ok", found.id, made_by)
        sink.add(item_result(instruction, "existing", payout_id=found.id, status=found.status, created_by_try=made_by))
        self._log_movement("Payout already created (found in Stripe)", instruction, found.id, found.status)
        return True

    def _refuse_paid_by_other_run(self, instruction: PayoutInstruction, other: PaidByRun, sink: ResultSink) -> None:
        payout = other.payout
        self._contention = True
        paid_by = {"paid_by_run": other.run_id, "paid_by_dag": other.dag_id}
        sink.add(item_result(instruction, "already_paid_by_run", payout_id=payout.id, status=payout.status, **paid_by))
        self.log.warning(
            "NOT paid, %s: run %r of DAG %r already paid this reference (payout %s, %s, status %s); nothing was "
            "sent. To pay it anyway, give the item a new reference",
            instruction.where(),
            other.run_id,
            other.dag_id,
            payout.id,
            format_amount(payout.amount, payout.currency),
            payout.status,
        )

    def _create(self, instruction: PayoutInstruction, attempt: Attempt) -> Answer[Any]:
        """One ``POST /v1/payouts`` (worker thread): never raises, returns the answer."""
        params = self.keys.params(instruction)
        return self.requests.send(
            attempt,
            lambda key: self.stripe.payouts_create(params, key),
            f"payout creation ({instruction.where()})",
            key=self.keys.key(instruction, attempt.generation),
            contain=True,  # e.g. a rate-limit wait beyond its bound: outcome unknown
        )

    def _settle(self, instruction: PayoutInstruction, answer: Answer[Any], sink: ResultSink) -> Attempt | None:
        """Record an answer (calling thread); return a follow-up attempt (next generation, or after a wait)."""
        settled = self.requests.settle(answer, self.log)
        if isinstance(settled, Attempt):
            self._contention = self._contention or settled.waits > 0
            return settled
        if settled.error is None:
            payout = PayoutFacts.of(settled.result)
            earlier = settled.outcome == "existing"
            made_by: int | None = self.identity.try_number
            if earlier:
                made_by = self.progress.try_that_created(payout.created, self.identity.try_number)
                self.progress.record(instruction.reference, settled.attempt.generation, "ok", payout.id, made_by)
            elif self.keys.scope_of(instruction) is not None:
                self._created_protected.add(instruction.reference)
            sink.add(
                item_result(
                    instruction, settled.outcome, payout_id=payout.id, status=payout.status, created_by_try=made_by
                )
            )
            verb = "Payout already created (Stripe replayed an earlier request)" if earlier else "Created payout"
            self._log_movement(verb, instruction, payout.id, payout.status)
            return None
        if settled.outcome == "used_elsewhere" and self.keys.scope_of(instruction) is not None:
            # Another task instance sent this reference key: one listing after the pool settles it.
            self._contention = True
            self._contended.append((instruction, settled.attempt))
            return None
        error = settled.error
        details = error.as_dict()
        # Definitive: a retry under any key cannot change the answer, so Airflow must not retry it.
        details["definitive"] = settled.outcome in ("refused", "used_elsewhere")
        if settled.outcome == "refused":
            details["next"] = "Stripe refused it and nothing was paid; fix the cause, then re-run: a fresh key is used"
        elif settled.outcome == "used_elsewhere":
            details["next"] = (
                "this item's key was used earlier in this run with other parameters (the instruction "
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

    def _settle_contended(self, sink: ResultSink) -> None:
        """One listing for every contended item: report what it finds, send the next generation for the rest
        (the other request is done, else 409, so the listing covers what it created)."""
        contended, self._contended = self._contended, []
        since = int((datetime.now(timezone.utc) - KEY_LIFETIME - WINDOW_SLACK).timestamp())
        window = self.identity.window_start(self.progress.first_attempt)
        others = since
        if self.cross_run is not None and self.progress.first_attempt is not None:
            others = min(since, int((self.progress.first_attempt - self.cross_run.lookback).timestamp()))
        self.log.info(
            "%d protected reference(s) were sent by another run at the same time: listing payouts to settle them",
            len(contended),
        )
        listing = self._list(min(since, window), others)
        attempts = {id(instruction): attempt for instruction, attempt in contended}

        def plan(instruction: PayoutInstruction) -> Attempt | None:
            if self._decide(instruction, listing, sink):
                return None
            # Nothing that moved money exists under that generation: the next one is this item's.
            return self.requests.advance(instruction.reference, attempts[id(instruction)].generation, hops=0)

        self._run(iter(instruction for instruction, _attempt in contended), plan, sink)

    def _check_paid_twice(self) -> None:
        """After contention, list the payouts created since the try began: no protected reference paid twice."""
        if self._contention and self._created_protected:
            start = self.requests.started - int(WINDOW_SLACK.total_seconds())
            listing = self._list(start, start)
            for reference in self._created_protected & listing.duplicates.keys():
                self.paid_twice[reference] = listing.duplicates[reference]
        for reference, ids in self.paid_twice.items():
            self.log.error(
                "PAID TWICE: reference %r has %d payouts that moved money (%s): cancel the extra one(s) in the "
                "Stripe Dashboard while pending",
                reference,
                len(ids),
                ", ".join(ids),
            )

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

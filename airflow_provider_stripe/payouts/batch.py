"""The payout engine: create a validated batch exactly once, concurrently, within the rate limit.

For each item, in order:

1. remembered as created in the task state store -> reported, nothing sent;
2. found by listing this run's payouts (metadata reference + run tag) -> reported,
   nothing sent (a found payout whose amount or currency differs is a *conflict*:
   the item fails and nothing is sent);
3. otherwise ``POST /v1/payouts`` with the item's idempotency key at its generation
   (:mod:`~airflow_provider_stripe.idempotency`): a previously refused item
   moves to a fresh generation, written to the state store before the request.

Answers: a payout -> ``created`` (or ``existing`` if Stripe replayed it). A definitive
refusal that Stripe *replayed* may be stale (an earlier try's error saved under the
key), so the item is retried at once under a fresh key, at most
:data:`~airflow_provider_stripe.idempotency.MAX_KEY_HOPS` times; a refusal from a fresh
execution fails the item (nothing paid; the next try uses a fresh key). Anything else
-- connection error, timeout, 5xx, 409, 429 after the SDK's own retries -- fails the item
as *unknown*: the payout may exist, so the next try reuses the same key and the listing
finds it.

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
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.errors import StripeRequestError, from_stripe_error, redact
from airflow_provider_stripe.idempotency import (
    MAX_KEY_HOPS,
    KeyFunction,
    allows_fresh_key,
    next_generation,
    was_replayed,
    without_key,
)
from airflow_provider_stripe.payouts.idempotency import PayoutIdentity
from airflow_provider_stripe.payouts.instructions import PayoutInstruction
from airflow_provider_stripe.payouts.progress import PayoutProgress
from airflow_provider_stripe.payouts.reconcile import PayoutFacts, Reconciliation, find_existing
from airflow_provider_stripe.payouts.results import ItemResult, ResultSink
from airflow_provider_stripe.validation import format_amount

if TYPE_CHECKING:
    from stripe import StripeClient

OnFailure = Literal["continue", "stop"]
ON_FAILURE_CHOICES: tuple[OnFailure, ...] = ("continue", "stop")
FAILURES_IN_MESSAGE = 50


class StripePayoutError(RuntimeError):
    """Some payouts failed; the others were created (or found) and are not repeated.

    ``summary`` and ``failures`` (per-item dicts) are the same as a successful run's
    return value; the message lists the failed items and what a retry will do.
    """

    def __init__(self, summary: dict[str, Any], failures: list[dict[str, Any]], failed_total: int) -> None:
        self.summary = summary
        # In input order, whatever order the concurrent workers finished in.
        failures = sorted(failures, key=lambda row: row.get("index", 0))
        self.failures = failures
        counts = ", ".join(f"{summary.get(k, 0)} {k}" for k in ("created", "existing", "failed", "not_attempted"))
        lines = [f"{failed_total} of {summary['total']} payout(s) failed ({counts})."]
        for row in failures[:FAILURES_IN_MESSAGE]:
            err = row.get("error") or {}
            lines.append(
                f"  - item {row['index']}, reference {row['reference']!r}: {err.get('message', 'failed')}"
                + (f" -> {err['next']}" if err.get("next") else "")
            )
        if failed_total > FAILURES_IN_MESSAGE:
            lines.append(f"  ... and {failed_total - FAILURES_IN_MESSAGE} more (see the task log / results)")
        if summary.get("not_attempted"):
            lines.append(f"  {summary['not_attempted']} item(s) were not attempted (on_failure='stop').")
        lines.append(
            "Retrying the task is safe: created payouts are found again and never repeated; items with an "
            "unknown outcome reuse their idempotency key; refused items get a fresh one."
        )
        super().__init__(redact("\n".join(lines)))


@dataclass(frozen=True)
class _Attempt:
    instruction: PayoutInstruction
    generation: int
    hops: int = 0
    sent_before: bool = False  # this generation's key was sent by an earlier try


@dataclass(frozen=True)
class _Answer:
    attempt: _Attempt
    payout: PayoutFacts | None = None
    error: StripeRequestError | None = None
    replayed: bool = False


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
    :param allow_unfiltered_listing: list without the ``created`` filter if the server
        refuses it (Stripe-compatible test servers only; Stripe itself supports it).
    """

    def __init__(
        self,
        *,
        client: StripeClient,
        identity: PayoutIdentity,
        progress: PayoutProgress,
        log: logging.Logger | Any,
        max_workers: int = 4,
        on_failure: OnFailure = "continue",
        key_for: KeyFunction | None = None,
        allow_unfiltered_listing: bool = False,
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
        self.key_for = key_for or identity.payout_key
        self.allow_unfiltered_listing = allow_unfiltered_listing
        self.reconciliation: Reconciliation | None = None
        self._started = int(time.time()) - 1

    # -- public ------------------------------------------------------------------------------

    def run(self, instructions: Iterable[PayoutInstruction], count: int, sink: ResultSink) -> None:
        """Create every instruction's payout (or find it); results go to ``sink``. An empty batch sends nothing."""
        if count == 0:
            self.log.info("The batch has no payout instructions: nothing to pay, no request sent to Stripe")
            return
        self._started = int(time.time()) - 1
        self.progress.load(count)
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
        result = find_existing(self.client, self.identity, since, allow_unfiltered=self.allow_unfiltered_listing)
        self.reconciliation = result
        self.log.info(
            "Looked for payouts of %s created since %s: %d listed, %d of this run found%s",
            self.identity.describe(),
            datetime.fromtimestamp(since, timezone.utc).isoformat(),
            result.listed,
            len(result.found),
            "" if result.filtered_by_server else " (server does not filter by created: listed without filter)",
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
        in_flight: dict[Future[_Answer], _Attempt] = {}
        try:
            while True:
                while not stop and len(in_flight) < window:
                    instruction = next(items, None)
                    if instruction is None:
                        break
                    attempt = self._plan(instruction, existing, sink)
                    if attempt is not None:
                        in_flight[pool.submit(self._create, attempt)] = attempt
                    elif self.on_failure == "stop" and sink.counts["failed"]:
                        stop = True
                if not in_flight:
                    break
                done, _ = wait(in_flight, timeout=self.progress.flush_interval, return_when=FIRST_COMPLETED)
                for future in done:
                    in_flight.pop(future)
                    follow_up = self._settle(future.result(), sink)
                    if follow_up is not None:
                        in_flight[pool.submit(self._create, follow_up)] = follow_up
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
    ) -> _Attempt | None:
        """Decide an item without a request if possible; else return the attempt to send."""
        reference = instruction.reference
        state = self.progress.get(reference)
        if state is not None and state.code == "ok":
            sink.add(item_result(instruction, "existing", payout_id=state.payout_id))
            self._log_movement("Already paid out (task state store)", instruction, state.payout_id, None)
            return None
        found = existing.get(reference)
        if found is not None:
            if (found.amount, found.currency) != (instruction.amount, instruction.currency):
                message = (
                    f"payout {found.id} already exists for this reference in this run with "
                    f"{format_amount(found.amount, found.currency)}, but the instruction now says "
                    f"{format_amount(instruction.amount, instruction.currency)}; nothing was sent"
                )
                error = {
                    "type": "conflict",
                    "message": message,
                    "next": "to pay a difference, add an item with a new reference",
                }
                sink.add(item_result(instruction, "failed", payout_id=found.id, status=found.status, error=error))
                self.log.error("%s: %s", instruction.where(), message)
                return None
            self.progress.record(reference, state.generation if state else 0, "ok", found.id)
            sink.add(item_result(instruction, "existing", payout_id=found.id, status=found.status))
            self._log_movement("Already paid out (found in Stripe)", instruction, found.id, found.status)
            return None
        if state is None:
            return _Attempt(instruction, 0)
        if state.code == "refused":
            generation = next_generation(
                state.generation, try_number=self.identity.try_number, remembered=self.progress.remembered
            )
            self.progress.record(reference, generation, "sent")
            return _Attempt(instruction, generation)
        return _Attempt(instruction, state.generation, sent_before=True)

    def _create(self, attempt: _Attempt) -> _Answer:
        """One ``POST /v1/payouts`` (worker thread): never raises, returns the answer."""
        import stripe

        instruction = attempt.instruction
        params = instruction.create_params(self.identity.stamp(instruction.reference))
        key = self.key_for(instruction.reference, attempt.generation)
        operation = f"payout creation ({instruction.where()})"
        try:
            payout = self.client.v1.payouts.create(params, {"idempotency_key": key})  # type: ignore[arg-type]
        except stripe.StripeError as exc:
            return _Answer(
                attempt, error=without_key(from_stripe_error(exc, operation), key), replayed=was_replayed(exc)
            )
        except Exception as exc:  # e.g. a rate-limit wait beyond its bound: outcome unknown
            return _Answer(attempt, error=without_key(from_stripe_error(exc, operation), key))
        response = getattr(payout, "last_response", None)
        return _Answer(attempt, payout=PayoutFacts.of(payout), replayed=was_replayed(response))

    def _settle(self, answer: _Answer, sink: ResultSink) -> _Attempt | None:
        """Record an answer (calling thread); return a follow-up attempt under a fresh key, if any."""
        attempt = answer.attempt
        instruction = attempt.instruction
        reference = instruction.reference
        if answer.payout is not None:
            payout = answer.payout
            self.progress.record(reference, attempt.generation, "ok", payout.id)
            # A replay of this try's own request (the SDK retried after a lost answer) is still
            # "created"; a replay of an earlier try's request is "existing".
            earlier = answer.replayed and (attempt.sent_before or payout.created < self._started)
            outcome = "existing" if earlier else "created"
            sink.add(item_result(instruction, outcome, payout_id=payout.id, status=payout.status))
            verb = "Already paid out (Stripe replayed an earlier request)" if earlier else "Paid out"
            self._log_movement(verb, instruction, payout.id, payout.status)
            return None
        error = answer.error
        assert error is not None
        if allows_fresh_key(error) and answer.replayed and attempt.hops < MAX_KEY_HOPS:
            generation = next_generation(
                attempt.generation, try_number=self.identity.try_number, remembered=self.progress.remembered
            )
            self.progress.record(reference, generation, "sent")
            self.log.info(
                "%s: Stripe replayed an earlier refusal saved under its idempotency key (%s); nothing was paid, "
                "so it is sent again under a fresh key",
                instruction.where(),
                error.error_type or error.http_status,
            )
            return _Attempt(instruction, generation, attempt.hops + 1)
        details = error.as_dict()
        if allows_fresh_key(error):
            self.progress.record(reference, attempt.generation, "refused")
            details["next"] = "Stripe refused it and nothing was paid; fix the cause, then retry: a fresh key is used"
        elif error.error_type == "idempotency_error" and error.http_status == 400:
            self.progress.record(reference, attempt.generation, "unknown")
            details["next"] = (
                "this reference's key was used earlier in this run with other parameters (the instruction "
                "changed?); a payout may exist: check payouts with metadata airflow_payout_ref="
                f"{reference!r}, and use a new reference to pay anyway"
            )
        else:
            self.progress.record(reference, attempt.generation, "unknown")
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

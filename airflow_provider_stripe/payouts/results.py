"""Per-item results of a batch and its summary: the task's return value ``{"summary", "results"}``
(outcomes and ``this_run``: docs/payout-safety.md), JSON-serialisable, never Stripe objects. With
``results_path`` every result is streamed to that JSON Lines file and only failed items are returned;
without it up to ``inline_limit`` items are (beyond that the failed ones, ``results_truncated``)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from typing import IO, Any, Literal, get_args

Outcome = Literal["created", "existing", "already_paid_by_run", "failed", "not_attempted", "dry_run"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
UNKNOWN_TRY = "earlier"
"""``created_by_try`` key of payouts of this run whose try is not known."""


@dataclass(frozen=True)
class ItemResult:
    index: int
    reference: str
    outcome: Outcome
    amount: int
    currency: str
    payout_id: str | None = None
    status: str | None = None
    created_by_try: int | None = None
    paid_by_run: str | None = None
    paid_by_dag: str | None = None
    error: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ResultSink:
    """Collects results: counts and amounts always, items inline or in a JSON Lines file."""

    def __init__(
        self, *, total: int, results_path: Any | None = None, inline_limit: int = 1000, try_number: int = 1
    ) -> None:
        self.total = total
        self.try_number = try_number
        self.created_by_try: dict[str, int] = {}
        self.paid_by_runs: dict[str, int] = {}
        self.results_path = results_path
        self.inline_limit = inline_limit
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.amounts: dict[str, dict[str, int]] = {}
        self.inline: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.failed_total = 0
        self._inline_all = results_path is None and total <= inline_limit
        self._stack = contextlib.ExitStack()
        self._file: IO[str] | None = None
        if results_path is not None:
            from airflow_provider_stripe.storage import atomic_open, resolve

            # Replaced whole when the batch closes the sink: a reader never sees half a file.
            target = resolve(results_path, field="results_path")
            self._file = self._stack.enter_context(atomic_open(target, "w"))

    def add(self, result: ItemResult) -> None:
        self.counts[result.outcome] += 1
        if result.outcome in ("created", "existing"):
            made_by = str(result.created_by_try) if result.created_by_try is not None else UNKNOWN_TRY
            self.created_by_try[made_by] = self.created_by_try.get(made_by, 0) + 1
        elif result.paid_by_run is not None:
            self.paid_by_runs[result.paid_by_run] = self.paid_by_runs.get(result.paid_by_run, 0) + 1
        per_currency = self.amounts.setdefault(result.currency, {})
        per_currency[result.outcome] = per_currency.get(result.outcome, 0) + result.amount
        row = result.as_dict()
        if self._file is not None:
            self._file.write(json.dumps(row, separators=(",", ":")) + "\n")
        if result.outcome == "failed":
            self.failed_total += 1
            if len(self.failures) < self.inline_limit:
                self.failures.append(row)
        if self._inline_all:
            self.inline.append(row)

    def close(self) -> None:
        self._stack.close()

    def run_totals(self) -> dict[str, Any]:
        """What the run did across its tries; counts only, XCom-small."""
        return {
            "try_number": self.try_number,
            "paid": self.counts["created"] + self.counts["existing"],
            "created_by_try": dict(sorted(self.created_by_try.items(), key=lambda kv: (not kv[0].isdigit(), kv[0]))),
            "found": self.counts["existing"],
            "already_paid_by_run": dict(self.paid_by_runs),
            "failed": self.counts["failed"],
            "not_attempted": self.counts["not_attempted"],
        }

    def describe_run(self) -> str:
        """One log line of :meth:`run_totals`: what the run did, by try."""
        totals = self.run_totals()
        tries = ", ".join(
            f"{n} by try {t}" if t != UNKNOWN_TRY else f"{n} by an earlier try (which one is not known)"
            for t, n in totals["created_by_try"].items()
        )
        others = ", ".join(f"{n} by run {run}" for run, n in totals["already_paid_by_run"].items())
        return (
            f"this run (try {self.try_number}) has {totals['paid']} payout(s)"
            + (f" ({tries})" if tries else "")
            + f"; {totals['found']} found this try, created earlier"
            + (f"; already paid by other runs, not paid again: {others}" if others else "")
            + f"; {totals['failed']} failed; {totals['not_attempted']} not attempted"
        )

    def summary(self, **extra: Any) -> dict[str, Any]:
        """Counts per outcome of this try, amounts per currency and outcome, the run's totals, plus ``extra``."""
        out: dict[str, Any] = {"total": self.total, **{k: v for k, v in self.counts.items() if v}}
        out |= {"amounts": self.amounts, "this_run": self.run_totals()}
        if self.results_path is not None:
            out["results_path"] = str(self.results_path)
        elif not self._inline_all:
            out["results_truncated"] = True
        out.update(extra)
        return out

    def value(self, **extra: Any) -> dict[str, Any]:
        """The task's return value: summary and the inline (or failed) results."""
        results = self.inline if self._inline_all else self.failures
        return {"summary": self.summary(**extra), "results": results}

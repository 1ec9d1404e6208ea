"""Per-item results of a batch and its summary: small, JSON-serialisable, never Stripe objects.

The task's return value (its XCom) is ``{"summary": {...}, "results": [...]}``. A batch
can be large, and XComs live in the metadata database, so:

* with ``results_path`` set, every item's result is streamed to that JSON Lines file
  (local path or any ObjectStoragePath URL, e.g. ``s3://bucket/payouts/{{ ds }}.jsonl``)
  and the return value carries its path, the summary and the failed items only;
* without it, results are returned inline up to ``inline_limit`` items; beyond that only
  failed items are (up to the same limit), ``summary["results_truncated"]`` is true, and
  the task log still has one line per item.

Each result: ``index``, ``reference``, ``outcome`` (``created``, ``existing``,
``failed``, ``not_attempted``, ``dry_run``), and ``payout_id``, ``status``, ``amount``,
``currency``, ``error`` when known.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from typing import IO, Any, Literal

Outcome = Literal["created", "existing", "failed", "not_attempted", "dry_run"]
OUTCOMES: tuple[Outcome, ...] = ("created", "existing", "failed", "not_attempted", "dry_run")


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item."""

    index: int
    reference: str
    outcome: Outcome
    amount: int
    currency: str
    payout_id: str | None = None
    status: str | None = None
    error: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form, ``None`` fields left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}


class ResultSink:
    """Collects results: counts and amounts always, items inline or in a JSON Lines file."""

    def __init__(self, *, total: int, results_path: Any | None = None, inline_limit: int = 1000) -> None:
        self.total = total
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

    def summary(self, **extra: Any) -> dict[str, Any]:
        """Counts per outcome, amounts per currency and outcome, plus ``extra``."""
        out: dict[str, Any] = {"total": self.total, **{k: v for k, v in self.counts.items() if v}}
        out["amounts"] = self.amounts
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

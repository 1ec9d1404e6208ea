"""What an approver of a payout batch sees (count, total per currency, largest items), validated exactly
as the batch will be; the batch given ``digest`` as ``approved_digest`` pays only what was approved."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

from airflow_provider_stripe.payouts.limits import BatchLimits
from airflow_provider_stripe.payouts.sources import validate_batch
from airflow_provider_stripe.validation import format_amount, format_totals

LARGEST_ITEMS = 5
"""Largest items shown per currency (amounts of different currencies are not compared)."""


def summarize_batch(
    source: Any,
    context: Mapping[str, Any] | None = None,
    *,
    limits: BatchLimits | None = None,
    largest: int = LARGEST_ITEMS,
) -> dict[str, Any]:
    """Validate the batch and summarise it for an approver (``text``: Markdown for an ``ApprovalOperator``'s
    body); raise if it is invalid or above ``limits``."""
    with validate_batch(source, context) as batch:
        if limits is not None:
            limits.check(batch.count, batch.totals)
        top: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
        for instruction in batch:
            row: dict[str, Any] = {
                "index": instruction.index,
                "reference": instruction.reference,
                "amount": instruction.amount,
                "amount_text": format_amount(instruction.amount, instruction.currency),
            }
            if instruction.description:
                row["description"] = instruction.description
            # Ties: the earlier item first (``-index`` ranks it higher).
            entry = (instruction.amount, -instruction.index, row)
            heap = top.setdefault(instruction.currency, [])
            if len(heap) < largest:
                heapq.heappush(heap, entry)
            elif largest:
                heapq.heappushpop(heap, entry)
        summary: dict[str, Any] = {
            "count": batch.count,
            "totals": dict(sorted(batch.totals.items())),
            "totals_text": batch.describe_totals(),
            "largest": {
                currency: [row for _, _, row in sorted(heap, key=lambda e: (e[0], e[1]), reverse=True)]
                for currency, heap in sorted(top.items())
            },
            "explicit_references": batch.explicit_references,
            "limits": (limits or BatchLimits()).as_dict(),
            "digest": batch.digest,
        }
    summary["text"] = approval_text(summary)
    return summary


def approval_text(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown for the approver (the HITL operator's ``body``)."""
    lines = [
        f"**{summary['count']} payout(s), {summary['totals_text']} in total.**",
        "",
        "| currency | total | largest items |",
        "|---|---|---|",
    ]
    for currency, total in summary["totals"].items():
        items = "; ".join(f"{row['amount_text']} `{row['reference']}`" for row in summary["largest"].get(currency, []))
        lines.append(f"| {currency.upper()} | {format_amount(total, currency)} | {items} |")
    limits = summary.get("limits") or {}
    if limits.get("max_items") is not None or limits.get("max_total"):
        caps = [f"at most {limits['max_items']} items"] if limits.get("max_items") is not None else []
        if limits.get("max_total"):
            caps.append(f"at most {format_totals(limits['max_total'])}")
        lines += ["", f"Within the batch's limits ({', '.join(caps)})."]
    lines += [
        "",
        f"{summary['explicit_references']} item(s) have their own reference (never paid twice across runs). "
        f"Instructions digest `{summary['digest'][:16]}`: the batch pays only these instructions.",
    ]
    return "\n".join(lines)

"""Payout reconciliation: every balance transaction each payout of a run settled, one row each.

Stripe itemizes an *automatic* payout (``GET /v1/balance_transactions?payout=po_...``); a
transaction's own ``payout`` field is not always set, so each row carries the payout it was listed
under. A *manual* payout cannot be itemized: it is one row (``itemized: false``) saying so. A payout
``failed`` after being paid is reported in ``failed_payouts``: its money did not arrive.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.compat import as_dict
from airflow_provider_stripe.constants import PAGE_SIZE
from airflow_provider_stripe.exports.lineage import LineageRecord, file_size, path_dataset, stripe_dataset
from airflow_provider_stripe.operators.exports import StripeExportOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_stripe.exports.formats import Columns

RECONCILIATION_COLUMNS: Columns = (
    ("payout_id", "string"),
    ("payout_type", "string"),
    ("payout_status", "string"),
    ("itemized", "boolean"),
    ("balance_transaction_id", "string"),
    ("type", "string"),
    ("reporting_category", "string"),
    ("amount", "int64"),
    ("fee", "int64"),
    ("net", "int64"),
    ("currency", "string"),
    ("created", "int64"),
    ("available_on", "int64"),
    ("status", "string"),
    ("source_id", "string"),
    ("description", "string"),
    ("note", "string"),
    ("source", "json"),
)
"""The row schema, in file order; ``source`` is the expanded source with ``expand_source``, else null."""

MANUAL_PAYOUT_NOTE = (
    "manual payout: Stripe itemizes automatic payouts only, so the transactions this payout "
    "drew from the balance cannot be listed; this row is the payout itself"
)


def _row(**values: Any) -> dict[str, Any]:
    """A row with every column of :data:`RECONCILIATION_COLUMNS`, in order (missing ones null)."""
    return {name: values.get(name) for name, _ in RECONCILIATION_COLUMNS}


def transaction_row(payout: Mapping[str, Any], txn: Mapping[str, Any]) -> dict[str, Any]:
    """One itemized balance transaction of ``payout`` as a row: its same-named fields, then the payout's."""
    source = txn.get("source")
    row = _row(**{name: txn.get(name) for name, _ in RECONCILIATION_COLUMNS})
    row.update(
        payout_id=payout.get("id"),
        payout_type="automatic",
        payout_status=payout.get("status"),
        itemized=True,
        balance_transaction_id=txn.get("id"),
        source_id=source.get("id") if isinstance(source, Mapping) else source,
        note=None,
        source=dict(source) if isinstance(source, Mapping) else None,
    )
    return row


def manual_payout_row(payout: Mapping[str, Any]) -> dict[str, Any]:
    """A manual payout as its single row: debited from the balance, so negative like Stripe's payout transaction."""
    amount = payout.get("amount")
    debit = -amount if isinstance(amount, int) else None
    txn = payout.get("balance_transaction")
    return _row(
        payout_id=payout.get("id"),
        payout_type="manual",
        payout_status=payout.get("status"),
        itemized=False,
        balance_transaction_id=txn.get("id") if isinstance(txn, Mapping) else txn,
        type="payout",
        reporting_category="payout",
        amount=debit,
        net=debit,
        currency=payout.get("currency"),
        created=payout.get("created"),
        available_on=payout.get("arrival_date"),
        status=payout.get("status"),
        source_id=payout.get("id"),
        description=payout.get("description"),
        note=MANUAL_PAYOUT_NOTE,
    )


class StripePayoutReconciliationOperator(StripeExportOperator):
    """Write every balance transaction of the run's payouts, one row each, with its payout id.

    :param file_format: ``jsonl``, ``csv`` or ``parquet`` (columns :data:`RECONCILIATION_COLUMNS`).
    :param payout_ids: a ``po_...`` id, a list, or a
        :class:`~airflow_provider_stripe.operators.payouts.StripePayoutBatchOperator` result (templated);
        ``None`` (default): every payout whose ``arrival_date`` is in the window.
    :param created_gte: *arrival date* window start (inclusive); default ``data_interval_start``.
    :param created_lt: its end (exclusive); default ``data_interval_end``.
    :param expand_source: expand each transaction's ``source`` into the ``source`` column (same requests).
    :param list_params: extra filters for the payouts listed by arrival date (e.g. ``{"status": "paid"}``).
    :param page_size: transactions per request (1-100).

    Also the :class:`StripeExportOperator` arguments but ``resource`` and ``mode``. Returns ``{"path",
    "count" (rows), "payouts", "manual_payouts", "failed_payouts" (ids), "account_id"}``.
    """

    template_fields: Sequence[str] = (*StripeExportOperator.template_fields, "payout_ids")
    ui_color = "#c9f2df"

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | ObjectStoragePath,
        payout_ids: Any = None,
        expand_source: bool = False,
        created_gte: datetime | int | str | None = None,
        created_lt: datetime | int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            resource="balance_transactions", path=path, created_gte=created_gte, created_lt=created_lt, **kwargs
        )
        self.payout_ids = payout_ids
        self.expand_source = expand_source
        self._manual: list[str] = []
        self._failed: list[str] = []
        self._payouts = 0

    def _given_ids(self) -> tuple[str, ...] | None:
        from airflow_provider_stripe.errors import PayoutIdsError, StripeInputError
        from airflow_provider_stripe.payouts.watch import normalize_payout_ids

        if self.payout_ids is None:
            return None
        try:
            return normalize_payout_ids(self.payout_ids)
        except PayoutIdsError as exc:
            raise StripeInputError(str(exc), field="payout_ids") from exc

    def _rows_for(self, payout: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The payout's rows: its balance transactions, or itself for a manual payout."""
        self._payouts += 1
        if payout.get("status") == "failed":
            self._failed.append(str(payout.get("id")))
        if payout.get("automatic") is False:
            self._manual.append(str(payout.get("id")))
            self.log.info("%s is a manual payout: written as one row (Stripe cannot itemize it)", payout.get("id"))
            yield manual_payout_row(payout)
            return
        params: dict[str, Any] = {"payout": payout["id"], "limit": self.page_size}
        if self.expand_source:
            params["expand"] = ["data.source"]
        for txn in self.hook.requests.list_all("balance_transactions", params):
            yield transaction_row(payout, as_dict(txn))

    def rows(self, context: Context) -> Iterator[dict[str, Any]]:
        """Every row of every payout of the run, payout after payout."""
        ids = self._given_ids()
        if ids is not None:
            for payout_id in ids:
                yield from self._rows_for(as_dict(self.hook.requests.payouts_retrieve(payout_id)))
            return
        gte, lt = self.window(context)
        params = {**self._list_params(), "limit": PAGE_SIZE, "arrival_date": {"gte": gte, "lt": lt}}
        for payout in self._listing("payouts", params):
            yield from self._rows_for(payout)

    def execute(self, context: Context) -> dict[str, Any]:
        target = self._target()
        self._list_params()  # validate before touching the network
        ids = self._given_ids()
        if ids is None:
            self.window(context)
        self._manual, self._failed, self._payouts = [], [], 0
        count = self.write(target, self.rows(context), RECONCILIATION_COLUMNS)
        account = self.hook.account_id
        self.stripe_lineage = LineageRecord(
            inputs=(stripe_dataset(account, "payouts"), stripe_dataset(account, "balance_transactions")),
            output=path_dataset(target),
            columns=RECONCILIATION_COLUMNS,
            rows=count,
            size=file_size(target),
        )
        self.log.info(
            "Reconciled %d payouts (%d manual, not itemized) into %d rows (%s) at %s",
            self._payouts,
            len(self._manual),
            count,
            self.hook.account_id or "platform account",
            target,
        )
        if self._failed:
            self.log.warning(
                "%d reconciled payouts are now failed: %s. Their money did not arrive (Stripe reversed each with a "
                "payout_failure balance transaction, also if it had been paid): check the destination bank account "
                "and pay them again.",
                len(self._failed),
                ", ".join(self._failed),
            )
        return {
            "path": str(target),
            "count": count,
            "payouts": self._payouts,
            "manual_payouts": list(self._manual),
            "failed_payouts": list(self._failed),
            "account_id": self.hook.account_id,
        }

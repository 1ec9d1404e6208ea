"""Export any listable Stripe resource created (or changed) in a DAG run's data interval, streamed
to a local file (atomically) or an :class:`~airflow.sdk.ObjectStoragePath`; see docs/exports.md."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.compat import as_dict, read_field
from airflow_provider_stripe.constants import EVENT_RETENTION_S, PAGE_SIZE
from airflow_provider_stripe.exports.lineage import (
    LineageRecord,
    StripeLineageMixin,
    file_size,
    path_dataset,
    stripe_dataset,
)
from airflow_provider_stripe.operators._base import StripeBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_stripe.exports.formats import Columns, CsvTimestamps, Format
    from airflow_provider_stripe.exports.slices import SlicedRead, SliceSpool

ExportMode = Literal["created", "changes"]
EXPORT_MODES: tuple[ExportMode, ...] = ("created", "changes")
UNCHANGING = ("balance_transactions", "events")  # no change events: Stripe never changes them
MAX_WORKERS = 32  # concurrent slice reads (the rate limiter bounds their requests)


def to_epoch_seconds(value: Any, field: str) -> int:
    """A window bound (aware or naive-UTC ``datetime``, epoch seconds, ISO-8601 text) as Stripe's integer
    ``created`` seconds, rounded up so ``>=`` and ``<`` stay exact."""
    from airflow_provider_stripe.errors import StripeInputError

    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return math.ceil(moment.timestamp())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.ceil(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        import pendulum

        try:
            parsed = pendulum.parse(text)
        except ValueError:  # pendulum's ParserError is a ValueError
            parsed = None
        if isinstance(parsed, datetime):
            return to_epoch_seconds(parsed, field)
    raise StripeInputError(
        f"{value!r} is not a point in time: pass a datetime, epoch seconds or an ISO-8601 string", field=field
    )


def resolve_window(
    context: Context, start_override: Any, end_override: Any, fields: tuple[str, str]
) -> tuple[int, int]:
    """``(gte, lt)`` epoch seconds: the overrides, else the run's data interval (``fields`` name them)."""
    from airflow_provider_stripe.errors import StripeInputError

    start_field, end_field = fields
    start = start_override if start_override is not None else context.get("data_interval_start")
    end = end_override if end_override is not None else context.get("data_interval_end")
    if start is None or end is None:
        raise StripeInputError(
            f"this run has no data interval (a manual run of an unscheduled DAG?): pass {start_field} and "
            f"{end_field}, or schedule the DAG with a data-interval timetable",
            field=start_field if start is None else end_field,
        )
    gte, lt = to_epoch_seconds(start, start_field), to_epoch_seconds(end, end_field)
    if gte >= lt:
        start_iso, end_iso = (datetime.fromtimestamp(s, timezone.utc).isoformat() for s in (gte, lt))
        raise StripeInputError(
            f"the window [{start_iso}, {end_iso}) is empty: {end_field} must be after {start_field}. On Airflow 3 "
            "a cron schedule such as '@daily' gives each run an empty data interval (start = end = the run's "
            "time): schedule the DAG with schedule=CronDataIntervalTimetable('@daily', timezone='UTC') "
            "(airflow.sdk; on Airflow 3.1 airflow.timetables.interval) or a timedelta, or pass the bounds",
            field=end_field,
        )
    return gte, lt


def first_each(objects: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``objects`` without any whose ``id`` came before: memory holds the ids seen, not the objects."""
    seen: set[Any] = set()
    for obj in objects:
        object_id = obj.get("id")
        if object_id in seen:
            continue
        seen.add(object_id)
        yield obj


class StripeExportOperator(StripeLineageMixin, StripeBaseOperator):
    """Export a Stripe resource's objects created (or changed) in the run's data interval.

    :param resource: one of :data:`~airflow_provider_stripe.exports.resources.RESOURCES` (``charges``, ``payouts``...).
    :param path: local path or object storage URL, templated (e.g. ``{{ day_window()[0] | ds }}`` with
        ``user_defined_macros=run_window.MACROS``); replaced if it exists.
    :param file_format: ``jsonl`` (whole objects), ``csv`` or ``parquet`` (declared columns; ``[parquet]`` extra).
    :param escape_csv_formulas: CSV only: prefix ``'`` to text cells starting with ``= + - @``, TAB or CR
        (default ``True``, OWASP CSV injection); ``False`` only for files no person opens.
    :param csv_timestamps: CSV only: times as ``iso`` (UTC, default) or ``epoch`` seconds.
    :param mode: ``created`` (default) or ``changes``: objects changed in the window, from its events
        (Stripe keeps 30 days), once each in their latest state.
    :param created_gte: window start (inclusive); default ``data_interval_start``.
    :param created_lt: window end (exclusive); default ``data_interval_end``.
    :param list_params: extra Stripe list filters, e.g. ``{"customer": "cus_..."}`` (``created`` mode only).
    :param page_size: objects per request (1-100).
    :param max_workers: time slices read at once (1-32, default 8), all within the connection's rate
        limit; the file is the same as a sequential read's, and a retry reads only unfinished slices.
    :param storage_conn_id: connection for an object storage ``path``.

    Also the :class:`StripeBaseOperator` arguments (map ``account_id`` for many accounts). Returns ``{"path",
    "count", "created_gte", "created_lt", "account_id"}``. Exported objects can include customer data.
    """

    template_fields: Sequence[str] = (
        *StripeBaseOperator.template_fields,
        "path",
        "created_gte",
        "created_lt",
        "list_params",
    )
    template_fields_renderers = {"list_params": "json"}
    ui_color = "#d5d0ff"

    def __init__(
        self,
        *,
        resource: str,
        path: str | os.PathLike[str] | ObjectStoragePath,
        file_format: Format = "jsonl",
        mode: ExportMode = "created",
        created_gte: datetime | int | str | None = None,
        created_lt: datetime | int | str | None = None,
        list_params: Mapping[str, Any] | None = None,
        page_size: int = PAGE_SIZE,
        max_workers: int = 8,
        storage_conn_id: str | None = None,
        escape_csv_formulas: bool = True,
        csv_timestamps: CsvTimestamps = "iso",
        **kwargs: Any,
    ) -> None:
        from airflow_provider_stripe.errors import StripeInputError
        from airflow_provider_stripe.exports.formats import FORMATS
        from airflow_provider_stripe.exports.resources import get_resource

        super().__init__(**kwargs)
        self.path_template = path  # as the DAG wrote it: a rendered ``path`` may not climb out of its folders
        self.export_resource = get_resource(resource)
        self.resource = self.export_resource.name
        if file_format not in FORMATS:
            raise StripeInputError(f"{file_format!r}: pass one of {', '.join(FORMATS)}", field="file_format")
        self.file_format = file_format
        if mode not in EXPORT_MODES:
            raise StripeInputError(f"{mode!r}: pass one of {', '.join(EXPORT_MODES)}", field="mode")
        if mode == "changes" and self.export_resource.name in UNCHANGING:
            raise StripeInputError(f"{resource} have no change events: export them with mode='created'", field="mode")
        self.mode = mode
        self.path = path
        self.created_gte = created_gte
        self.created_lt = created_lt
        self.list_params = list_params
        self.page_size = page_size
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or not 1 <= max_workers <= MAX_WORKERS:
            raise StripeInputError(f"{max_workers!r}: pass an int from 1 to {MAX_WORKERS}", field="max_workers")
        self.max_workers = max_workers
        self.storage_conn_id = storage_conn_id
        self.escape_csv_formulas = escape_csv_formulas
        if csv_timestamps not in ("iso", "epoch"):
            raise StripeInputError(f"{csv_timestamps!r}: pass 'iso' or 'epoch'", field="csv_timestamps")
        self.csv_timestamps: CsvTimestamps = csv_timestamps
        self._spool: SliceSpool | None = None
        self._sliced: SlicedRead | None = None

    def window(self, context: Context) -> tuple[int, int]:
        return resolve_window(context, self.created_gte, self.created_lt, ("created_gte", "created_lt"))

    def _list_params(self) -> dict[str, Any]:
        from airflow_provider_stripe.errors import StripeInputError

        params = self.list_params or {}
        if not isinstance(params, Mapping):
            raise StripeInputError(f"{params!r}: pass a dict of extra list filters", field="list_params")
        if "created" in params or any(str(k).startswith("created[") for k in params):
            raise StripeInputError("set the window with created_gte/created_lt, not here", field="list_params")
        page_size = self.page_size
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= PAGE_SIZE:
            raise StripeInputError(f"{page_size!r}: pass an int from 1 to {PAGE_SIZE}", field="page_size")
        return {**params, "limit": page_size}

    def _listing(self, service: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        return (as_dict(obj) for obj in self.hook.requests.list_all(service, params))

    def _query(self, gte: int, lt: int) -> tuple[str, dict[str, Any]]:
        """The listing of ``[gte, lt)``: the objects created in it, or (``changes``) its events."""
        if self.mode != "changes":
            return self.resource, {**self._list_params(), "created": {"gte": gte, "lt": lt}}
        params: dict[str, Any] = {"created": {"gte": gte, "lt": lt}, "limit": self.page_size}
        if self.export_resource.event_type:
            params["type"] = self.export_resource.event_type
        return "events", params

    def _rows(self, listed: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Rows of a listing: in ``changes`` mode the resource's objects of its events (newest first),
        each once in its first, latest, state."""
        if self.mode != "changes":
            return iter(listed)
        objects = (read_field(read_field(event, "data"), "object") for event in listed)
        return first_each(as_dict(obj) for obj in objects if read_field(obj, "object") == self.export_resource.object)

    def _read_slice(self, gte: int, lt: int) -> Iterator[dict[str, Any]]:
        return self._rows(self._listing(*self._query(gte, lt)))

    def iter_rows(self, target: Path | ObjectStoragePath, gte: int, lt: int) -> Iterator[dict[str, Any]]:
        """The export's rows in a sequential read's order, read in parallel time slices spooled beside
        ``target`` for a retry (the first page of the whole window is kept as the newest slice)."""
        from airflow_provider_stripe.errors import StripeInputError
        from airflow_provider_stripe.exports import slices

        changes = self.mode == "changes"
        oldest = math.floor(time.time()) - EVENT_RETENTION_S
        if changes and gte < oldest:
            raise StripeInputError(
                f"mode='changes' reads Stripe's events, kept for 30 days only: the window starts at "
                f"{datetime.fromtimestamp(gte, timezone.utc).isoformat()}, before "
                f"{datetime.fromtimestamp(oldest, timezone.utc).isoformat()}. Export that window with "
                "mode='created' (a full re-export) instead",
                field="created_gte",
            )
        service, whole = self._query(gte, lt)
        if self.max_workers == 1:
            yield from self._rows(self._listing(service, whole))
            return
        self.hook.get_client()  # built once here, then shared by the workers
        spool = slices.SliceSpool(slices.spool_directory(target, self._spool_identity(gte, lt)))
        newest = min((s for s in spool.finished_slices() if s[1] == lt), default=None)
        if newest is None:
            objects, has_more = self.hook.requests.first_page(service, whole)
            page = [as_dict(obj) for obj in objects]
            if not has_more:
                yield from self._rows(page)
                return
            # The page holds every object newer than its oldest one's second (which may go on: left to the slices).
            cut = int(page[-1]["created"]) + 1
            if cut < lt:
                newest = (cut, lt)
                kept = (row for row in page if int(row["created"]) >= cut)
                spool.write(newest, self._rows(kept))
        rest = newest[0] if newest is not None else lt
        planned = ([newest] if newest is not None else []) + (
            slices.plan_slices(gte, rest, self.max_workers * slices.SLICES_PER_WORKER) if rest > gte else []
        )
        self._spool, self._sliced = spool, slices.SlicedRead()
        rows = slices.read_slices(self._read_slice, planned, spool, self.max_workers, self._sliced)
        # Each slice is deduplicated on its own; across slices, newest first, the first copy wins.
        yield from first_each(rows) if changes else rows

    def _spool_identity(self, gte: int, lt: int) -> dict[str, Any]:
        """What decides an export's rows: finished slices are reused only by the same export."""
        params = {k: v for k, v in self._list_params().items() if k != "limit"}
        return {
            "resource": self.resource,
            "mode": self.mode,
            "params": params,
            "account": self.hook.account_id,
            "livemode": self.hook.config.livemode,
            "window": [gte, lt],
        }

    def _target(self) -> Path | ObjectStoragePath:
        """A local ``Path``, or an ``ObjectStoragePath`` for URLs, once the account and rendered path are checked."""
        from airflow_provider_stripe.storage import resolve

        self.checked_account()
        return resolve(self.path, self.storage_conn_id, template=self.path_template)

    def write(self, target: Path | ObjectStoragePath, rows: Iterator[Mapping[str, Any]], columns: Columns) -> int:
        """Write ``rows`` in this task's format, atomically."""
        from airflow_provider_stripe.exports.formats import check_format, write_rows

        fmt = check_format(self.file_format)
        return write_rows(
            target, rows, fmt, columns, escape_formulas=self.escape_csv_formulas, csv_timestamps=self.csv_timestamps
        )

    def execute(self, context: Context) -> dict[str, Any]:
        gte, lt = self.window(context)
        target = self._target()
        self._list_params()  # validate before touching the network
        self._spool, self._sliced = None, None
        count = self.write(target, self.iter_rows(target, gte, lt), self.export_resource.columns)
        if self._spool is not None:
            self._spool.remove()
        if self._sliced is not None:
            self.log.info(
                "Read the window as %d time slices, %d at a time: %d listed now, %d already spooled "
                "(the first page's, or an earlier try's)",
                self._sliced.planned,
                self.max_workers,
                self._sliced.read,
                self._sliced.kept,
            )
        self.stripe_lineage = LineageRecord(
            inputs=(stripe_dataset(self.hook.account_id, self.resource),),
            output=path_dataset(target),
            columns=self.export_resource.columns,
            rows=count,
            size=file_size(target),
        )
        where = str(target)
        self.log.info(
            "Exported %d %s %s in [%s, %s) (%s) to %s",
            count,
            self.resource,
            "changed" if self.mode == "changes" else "created",
            datetime.fromtimestamp(gte, timezone.utc).isoformat(),
            datetime.fromtimestamp(lt, timezone.utc).isoformat(),
            self.hook.account_id or "platform account",
            where,
        )
        return {"path": where, "count": count, "created_gte": gte, "created_lt": lt, "account_id": self.hook.account_id}

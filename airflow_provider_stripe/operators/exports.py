"""Export the Stripe charges or payouts created in a DAG run's data interval to JSON Lines.

The window is ``[data_interval_start, data_interval_end)`` (override with
``created_gte`` / ``created_lt``), sent to Stripe as ``created[gte]`` / ``created[lt]``.
Objects are read with the SDK's auto-pagination and written one line each as they
arrive, so memory stays flat however many there are. The file goes to a local path
(written to a temporary name, then renamed: no half-written file on failure) or to any
Airflow :class:`~airflow.sdk.ObjectStoragePath` (``s3://...``, ``gs://...``, with
``storage_conn_id``).

Stripe-compatible test servers do not all support those filters (localstripe accepts
only ``created[gt]`` on charges and no ``created`` filter on payouts). When the
connection's ``base_url`` is *not* Stripe's, a first page refused with a 400 or a 500 is
retried with ``created[gt]=start-1``, then with no ``created`` filter; every object is
also checked against the window client-side, so the export is exact either way. Against
Stripe itself there is no fallback: an error is an error.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from airflow_provider_stripe.compat import is_object_storage_path
from airflow_provider_stripe.operators._base import StripeBaseOperator
from airflow_provider_stripe.sdk_compat import as_dict
from airflow_provider_stripe.validation import StripeInputError

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

WindowParams = Callable[[int, int], dict[str, Any]]

WINDOW_STRATEGIES: tuple[tuple[str, WindowParams], ...] = (
    ("created[gte]/created[lt]", lambda gte, lt: {"created": {"gte": gte, "lt": lt}}),
    ("created[gt]=start-1", lambda gte, lt: {"created": {"gt": gte - 1}}),
    ("no created filter", lambda gte, lt: {}),
)
"""Server-side window filters, most exact first; only the first is used against Stripe."""


def to_epoch_seconds(value: Any, field: str) -> int:
    """A window bound as Stripe's integer ``created`` seconds, rounded up.

    Accepts an aware ``datetime`` (naive means UTC, Airflow's convention), epoch seconds,
    or an ISO-8601 string (what ``{{ data_interval_start }}`` renders to). Rounding up
    keeps ``created >= bound`` and ``created < bound`` exact for integer ``created``.
    """
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


class _StripeExportOperator(StripeBaseOperator):
    """Shared export logic; subclasses name the Stripe list (``resource``)."""

    resource: ClassVar[str]
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
        path: str | os.PathLike[str] | ObjectStoragePath,
        created_gte: datetime | int | str | None = None,
        created_lt: datetime | int | str | None = None,
        list_params: Mapping[str, Any] | None = None,
        page_size: int = 100,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.created_gte = created_gte
        self.created_lt = created_lt
        self.list_params = list_params
        self.page_size = page_size
        self.storage_conn_id = storage_conn_id

    # -- inputs -------------------------------------------------------------------------

    def window(self, context: Context) -> tuple[int, int]:
        """``(gte, lt)`` epoch seconds: the overrides, else the run's data interval."""
        start = self.created_gte if self.created_gte is not None else context.get("data_interval_start")
        end = self.created_lt if self.created_lt is not None else context.get("data_interval_end")
        if start is None or end is None:
            raise StripeInputError(
                "this run has no data interval (a manual run of an unscheduled DAG?): pass created_gte and "
                "created_lt, or schedule the DAG with a data-interval timetable",
                field="created_gte" if start is None else "created_lt",
            )
        gte, lt = to_epoch_seconds(start, "created_gte"), to_epoch_seconds(end, "created_lt")
        if gte >= lt:
            raise StripeInputError(
                f"the window [{gte}, {lt}) is empty: created_lt must be after created_gte. A cron schedule "
                "gives runs an empty data interval unless it is a CronDataIntervalTimetable; or pass the bounds",
                field="created_lt",
            )
        return gte, lt

    def _list_params(self) -> dict[str, Any]:
        params = self.list_params or {}
        if not isinstance(params, Mapping):
            raise StripeInputError(f"{params!r}: pass a dict of extra list filters", field="list_params")
        if "created" in params or any(str(k).startswith("created[") for k in params):
            raise StripeInputError("set the window with created_gte/created_lt, not here", field="list_params")
        if isinstance(self.page_size, bool) or not isinstance(self.page_size, int) or not 1 <= self.page_size <= 100:
            raise StripeInputError(f"{self.page_size!r}: pass an int from 1 to 100", field="page_size")
        return {**params, "limit": self.page_size}

    # -- reading ------------------------------------------------------------------------

    def iter_objects(self, gte: int, lt: int) -> Iterator[dict[str, Any]]:
        """Every object created in ``[gte, lt)``, page by page, as plain dicts."""
        import stripe

        from airflow_provider_stripe.errors import from_stripe_error

        page = self._first_page(gte, lt)
        try:
            for obj in page.auto_paging_iter():
                data = as_dict(obj)
                created = data.get("created")
                if isinstance(created, int) and gte <= created < lt:
                    yield data
        except stripe.StripeError as exc:
            raise from_stripe_error(exc, f"{self.resource}.list") from exc

    def _first_page(self, gte: int, lt: int) -> Any:
        """The first page, with the most exact window filter the server accepts (see module doc)."""
        import stripe

        from airflow_provider_stripe.errors import from_stripe_error

        service = getattr(self.get_client().v1, self.resource)
        operation = f"{self.resource}.list"
        base = self._list_params()
        strategies = WINDOW_STRATEGIES if not self.hook.config.uses_default_base_url else WINDOW_STRATEGIES[:1]
        for number, (name, window_params) in enumerate(strategies):
            try:
                return service.list({**base, **window_params(gte, lt)})
            except stripe.StripeError as exc:
                error = from_stripe_error(exc, operation)
                refused = error.http_status == 400 or (error.http_status or 0) >= 500
                if not refused or number == len(strategies) - 1:
                    raise error from exc
                self.log.warning(
                    "%s at %s refused the %s filter (%s); retrying with %s and filtering client-side",
                    operation,
                    self.hook.config.base_url,
                    name,
                    error,
                    strategies[number + 1][0],
                )
        raise AssertionError("unreachable: the last strategy returns or raises")

    # -- writing ------------------------------------------------------------------------

    def _target(self) -> Path | ObjectStoragePath:
        """A local ``Path``, or an ``ObjectStoragePath`` for URLs (``file://`` becomes local)."""
        from airflow.sdk import ObjectStoragePath

        raw = self.path
        if not raw or not isinstance(raw, (str, os.PathLike, ObjectStoragePath)):
            raise StripeInputError(f"{raw!r}: pass a file path or an object storage URL", field="path")
        if isinstance(raw, str) and "://" in raw:
            raw = ObjectStoragePath(raw, conn_id=self.storage_conn_id)
        if isinstance(raw, ObjectStoragePath):
            return Path(raw.path) if raw.protocol in ("file", "local") else raw
        return Path(raw)

    def write_lines(self, target: Path | ObjectStoragePath, rows: Iterator[dict[str, Any]]) -> int:
        """Write one JSON object per line as rows arrive; return how many."""
        if not is_object_storage_path(target):  # on Airflow 3.1 an ObjectStoragePath is a Path too
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    count = _dump(rows, handle)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return count
        # Object stores commit a file when it is closed, even after an error: write a
        # sibling ".part" object and move it into place only once complete.
        part = target.parent / f".{target.name}.part"
        try:
            with part.open("w", encoding="utf-8") as handle:
                count = _dump(rows, handle)
            part.rename(target)
        except BaseException:
            if part.exists():
                part.unlink()
            raise
        return count

    def execute(self, context: Context) -> dict[str, Any]:
        gte, lt = self.window(context)
        target = self._target()
        self._list_params()  # validate before touching the network
        count = self.write_lines(target, self.iter_objects(gte, lt))
        where = str(target)
        account = self.hook.account_id or "platform account"
        self.log.info(
            "Exported %d %s created in [%s, %s) (%s) to %s",
            count,
            self.resource,
            datetime.fromtimestamp(gte, timezone.utc).isoformat(),
            datetime.fromtimestamp(lt, timezone.utc).isoformat(),
            account,
            where,
        )
        return {"path": where, "count": count, "created_gte": gte, "created_lt": lt, "account_id": self.hook.account_id}


def _dump(rows: Iterator[dict[str, Any]], handle: IO[str]) -> int:
    count = 0
    for row in rows:
        handle.write(json.dumps(row, separators=(",", ":"), sort_keys=True, default=str))
        handle.write("\n")
        count += 1
    return count


class StripeListChargesOperator(_StripeExportOperator):
    """Export the charges created in the run's data interval to a JSON Lines file.

    :param path: local path or object storage URL (templated, e.g.
        ``/data/stripe/charges/{{ ds }}.jsonl``). Replaced if it exists.
    :param created_gte: window start (inclusive); default ``data_interval_start``.
    :param created_lt: window end (exclusive); default ``data_interval_end``.
    :param list_params: extra Stripe list filters, e.g. ``{"customer": "cus_..."}``.
    :param page_size: objects per request (1-100).
    :param storage_conn_id: connection for an object storage ``path``.
    :param account_id: export a connected account's charges (``Stripe-Account``).
    :param stripe_conn_id: the ``stripe`` connection.

    Returns ``{"path", "count", "created_gte", "created_lt", "account_id"}``. The file
    holds whole charge objects, which include customer data: store it accordingly.
    """

    resource = "charges"


class StripeListPayoutsOperator(_StripeExportOperator):
    """Export the payouts created in the run's data interval to a JSON Lines file.

    Same parameters and result as :class:`StripeListChargesOperator`; ``list_params``
    may filter e.g. ``{"status": "paid"}``.
    """

    resource = "payouts"

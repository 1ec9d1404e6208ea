"""File formats of the exports (JSON Lines, CSV, Parquet), streamed and written atomically.

CSV is opened by people: formula-like text is neutralised and times are ISO-8601 UTC by default.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.errors import StripeInputError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
ColumnType = Literal["string", "int64", "timestamp", "float64", "boolean", "json"]
"""``timestamp``: epoch seconds from Stripe; a UTC timestamp in Parquet, ISO-8601 in CSV by default."""
CsvTimestamps = Literal["iso", "epoch"]
Columns = Sequence[tuple[str, ColumnType]]

_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
PARQUET_ROW_GROUP = 10_000
"""Rows buffered per Parquet row group: the bound on a Parquet export's memory."""


def check_format(value: Any) -> Format:
    """``value`` if it is a known format; a Parquet format also needs pyarrow, checked here."""
    if value not in FORMATS:
        raise StripeInputError(f"{value!r}: pass one of {', '.join(FORMATS)}", field="format")
    if value == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise StripeInputError(
                "Parquet needs pyarrow: pip install 'airflow-provider-stripe[parquet]'", field="format"
            ) from exc
    return value


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def cell(value: Any, kind: ColumnType, column: str) -> Any:
    """``value`` as the column's type (nested: JSON text; ``None`` kept); another type fails naming the column."""
    if value is None:
        return None
    if kind == "json":
        return _json(value)
    if kind == "string":
        return value if isinstance(value, str) else _json(value) if isinstance(value, (Mapping, list)) else str(value)
    ok = {
        "int64": isinstance(value, int) and not isinstance(value, bool),
        "timestamp": isinstance(value, int) and not isinstance(value, bool),
        "float64": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise ValueError(
            f"column {column!r} is declared {kind} but Stripe sent {value!r}: update the resource's columns "
            "(airflow_provider_stripe.exports.resources) for this API version"
        )
    return float(value) if kind == "float64" else value


def _write_jsonl(rows: Iterable[Mapping[str, Any]], handle: IO[bytes], columns: Columns) -> int:
    count = 0
    for row in rows:
        handle.write(_json(row).encode() + b"\n")
        count += 1
    return count


def _write_csv(
    rows: Iterable[Mapping[str, Any]], handle: IO[bytes], columns: Columns, escape: bool, timestamps: CsvTimestamps
) -> int:
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow([name for name, _ in columns])

    def to_cell(value: Any, kind: ColumnType, column: str) -> Any:
        out = cell(value, kind, column)
        if out is None:
            return None
        if kind == "timestamp" and timestamps == "iso":
            return datetime.fromtimestamp(out, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # e.g. 2024-11-20T09:30:00Z
        if kind == "string" and escape and isinstance(value, str) and out.startswith(_FORMULA_TRIGGERS):
            return "'" + out  # text from Stripe (not JSON) a spreadsheet would run: OWASP's CSV injection rule
        return out

    count = 0
    for row in rows:
        writer.writerow([to_cell(row.get(name), kind, name) for name, kind in columns])
        count += 1
    text.flush()
    text.detach()
    return count


def _write_parquet(rows: Iterable[Mapping[str, Any]], handle: IO[bytes], columns: Columns) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "json": pa.string(), "int64": pa.int64(), "timestamp": pa.timestamp("s", tz="UTC")}
    types["float64"] = pa.float64()
    types["boolean"] = pa.bool_()
    schema = pa.schema([(name, types[kind]) for name, kind in columns])  # JSON columns: UTF-8 text
    count = 0
    with pq.ParquetWriter(handle, schema) as writer:
        batch: dict[str, list[Any]] = {name: [] for name, _ in columns}
        for row in rows:
            for name, kind in columns:
                batch[name].append(cell(row.get(name), kind, name))
            count += 1
            if count % PARQUET_ROW_GROUP == 0:
                writer.write_table(pa.Table.from_pydict(batch, schema=schema))
                batch = {name: [] for name, _ in columns}
        if count % PARQUET_ROW_GROUP or count == 0:
            writer.write_table(pa.Table.from_pydict(batch, schema=schema))
    return count


def write_rows(
    target: Path | ObjectStoragePath,
    rows: Iterator[Mapping[str, Any]],
    fmt: Format,
    columns: Columns,
    *,
    escape_formulas: bool = True,
    csv_timestamps: CsvTimestamps = "iso",
) -> int:
    """Write ``rows`` to ``target`` in ``fmt``, atomically; return how many were written."""
    from airflow_provider_stripe.storage import atomic_open  # at run time: DAG files import this module

    with atomic_open(target) as handle:
        if fmt == "csv":
            return _write_csv(rows, handle, columns, escape_formulas, csv_timestamps)
        return (_write_parquet if fmt == "parquet" else _write_jsonl)(rows, handle, columns)


def write_chunks(target: Path | ObjectStoragePath, chunks: Iterable[bytes]) -> int:
    """Write a byte stream to ``target`` as it arrives, atomically; return the byte count."""
    from airflow_provider_stripe.storage import atomic_open

    size = 0
    with atomic_open(target) as handle:
        for chunk in chunks:
            handle.write(chunk)
            size += len(chunk)
    return size

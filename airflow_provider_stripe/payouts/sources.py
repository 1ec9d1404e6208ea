"""Where a batch's payout instructions come from, and the validation pass over all of them.

A batch is given as a list (templated, or an XCom), a path to a JSON array or JSON Lines
file (local, or any :class:`~airflow.sdk.ObjectStoragePath` URL such as ``s3://...``),
or a callable returning an iterable. Every source is read as a stream.

:func:`validate_batch` reads the source once, validates every item and writes the
normalised instructions to a temporary JSON Lines *spool*: if any item is invalid it
raises :class:`StripeBatchInputError` listing them all, and nothing is ever sent.
Otherwise the batch is replayed from the spool, so a generator or a remote file is read
only once and memory stays flat however many items there are (only a 64-bit digest per
reference is kept, to find duplicates).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from airflow_provider_stripe.errors import StripeDeterministicError
from airflow_provider_stripe.payouts.instructions import PayoutInstruction, check_instruction
from airflow_provider_stripe.validation import StripeInputError, format_amount

MAX_ERRORS_KEPT = 200
"""Problems kept (and shown) in a :class:`StripeBatchInputError`; all are counted and logged."""

_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_READ_CHUNK = 1 << 16


class StripeBatchInputError(StripeDeterministicError, ValueError):
    """One or more payout instructions are invalid; nothing was sent to Stripe.

    :param errors: the problems kept (each names index, reference and field).
    :param invalid_items: how many items are invalid.
    :param total_items: how many items were read.
    :param total_errors: how many problems were found (``errors`` may hold fewer).
    """

    def __init__(
        self,
        errors: Sequence[StripeInputError],
        *,
        invalid_items: int,
        total_items: int,
        total_errors: int | None = None,
    ) -> None:
        self.errors = list(errors)
        self.invalid_items = invalid_items
        self.total_items = total_items
        self.total_errors = len(self.errors) if total_errors is None else total_errors
        lines = [
            f"{invalid_items} of {total_items} payout instruction(s) are invalid, so no payout was created. "
            "Fix these and run the task again:"
        ]
        lines += [f"  - {e}" for e in self.errors]
        if self.total_errors > len(self.errors):
            lines.append(f"  ... and {self.total_errors - len(self.errors)} more problem(s), listed in the task log")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class UnreadableItem:
    """A line or element of a file that is not JSON; reported like an invalid item."""

    message: str


class SourceError(StripeDeterministicError, ValueError):
    """The ``payouts`` argument itself cannot be read (wrong type, missing file, bad JSON array)."""


# -- reading sources -------------------------------------------------------------------


def iter_source(source: Any, context: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """Yield the raw items of any supported source, lazily."""
    if callable(source) and not isinstance(source, (str, os.PathLike)):
        # Airflow renders a callable template field as fn(context=..., jinja_env=...);
        # called directly (outside Airflow's renderer) it gets the same arguments.
        yield from iter_source(source(context=context, jinja_env=None), context)
        return
    if source is None:
        raise SourceError("payouts is None: pass a list of payout dicts, a JSON/JSONL path, or a callable")
    if isinstance(source, str) and source.lstrip().startswith(("[", "{")):
        raise SourceError(
            "payouts is a string holding a list, not a list: a Jinja template renders to text. Pass the XCom "
            "itself (e.g. payouts=task.output), or set render_template_as_native_obj=True on the DAG"
        )
    if isinstance(source, (str, os.PathLike)) or _is_object_storage_path(source):
        yield from _iter_file(source)
        return
    if isinstance(source, Mapping):
        raise SourceError("payouts is a single dict: pass a list of payout dicts (one per payout)")
    if isinstance(source, (bytes, bytearray)) or not isinstance(source, Iterable):
        raise SourceError(f"payouts is a {type(source).__name__}: pass a list, a JSON/JSONL path or a callable")
    yield from source


def _is_object_storage_path(value: Any) -> bool:
    return type(value).__name__ == "ObjectStoragePath" and hasattr(value, "open")


@contextlib.contextmanager
def _open_text(path: Any) -> Iterator[IO[str]]:
    """Open a local path, or any ObjectStoragePath / URL (``s3://``, ``file://``...), as text."""
    text = str(path)
    if _is_object_storage_path(path) or "://" in text:
        from airflow.sdk import ObjectStoragePath

        target = path if _is_object_storage_path(path) else ObjectStoragePath(text)
        handle = target.open("r", encoding="utf-8")
    else:
        local = Path(text)
        if not local.is_file():
            raise SourceError(f"payouts file {text!r} does not exist (or is not a file) on this worker")
        handle = local.open("r", encoding="utf-8")
    with handle:
        yield handle


def _iter_file(path: Any) -> Iterator[Any]:
    with _open_text(path) as handle:
        suffix = Path(str(path)).suffix.lower()
        if suffix in _JSONL_SUFFIXES:
            yield from _iter_jsonl(handle)
            return
        first = _peek_first_char(handle)
        yield from (_iter_json_array(handle, path) if first == "[" else _iter_jsonl(handle, first))


def _peek_first_char(handle: IO[str]) -> str:
    while True:
        char = handle.read(1)
        if not char or not char.isspace():
            return char


def _iter_jsonl(handle: IO[str], prefix: str = "") -> Iterator[Any]:
    """One JSON value per non-blank line; a line that is not JSON becomes an :class:`UnreadableItem`."""
    for number, line in enumerate(_prefixed_lines(handle, prefix), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            yield UnreadableItem(f"line {number} is not JSON ({exc.msg} at column {exc.colno})")


def _prefixed_lines(handle: IO[str], prefix: str) -> Iterator[str]:
    first = True
    for line in handle:
        yield prefix + line if first else line
        first = False
    if first and prefix:
        yield prefix


def _iter_json_array(handle: IO[str], path: Any) -> Iterator[Any]:
    """Stream the elements of a JSON array (its ``[`` already read) without loading the whole file.

    Uses :meth:`json.JSONDecoder.raw_decode` on a sliding buffer. A value is accepted only
    once a character follows it in the buffer (or the file ended), so a number split
    across two reads (``12`` of ``1250``) is never taken for a complete one.
    """
    decoder = json.JSONDecoder()
    buffer, pos, eof = "", 0, False
    expect_value = True  # after '[' or ','

    def refill() -> bool:
        nonlocal buffer, pos, eof
        chunk = handle.read(_READ_CHUNK)
        buffer, pos = buffer[pos:] + chunk, 0
        eof = not chunk
        return bool(chunk)

    def skip_ws() -> None:
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos].isspace():
                pos += 1
            if pos < len(buffer) or not refill():
                return

    def fail(what: str) -> SourceError:
        return SourceError(f"payouts file {str(path)!r} is not a valid JSON array: {what}")

    first_element = True
    while True:
        skip_ws()
        if pos >= len(buffer):
            raise fail("it ends before the closing ]")
        if buffer[pos] == "]" and (first_element or not expect_value):
            pos += 1
            break
        if not expect_value:
            if buffer[pos] != ",":
                raise fail(f"expected ',' or ']' but found {buffer[pos]!r}")
            pos += 1
            expect_value = True
            continue
        while True:
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                if eof:
                    raise fail(exc.msg) from None
                refill()
                continue
            if end >= len(buffer) and not eof:
                refill()
                continue
            break
        pos = end
        expect_value = False
        first_element = False
        yield value
    skip_ws()
    if pos < len(buffer):
        raise fail("there is content after the closing ]")


# -- the validation pass -----------------------------------------------------------------


@dataclass
class ValidatedBatch:
    """Every instruction of a batch, validated, spooled to a temporary JSON Lines file.

    Iterate it (as often as needed) to stream :class:`PayoutInstruction` objects; call
    :meth:`close` (or use it as a context manager) to delete the spool.
    """

    path: Path
    count: int
    totals: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[PayoutInstruction]:
        with self.path.open("r", encoding="utf-8") as handle:
            for line in handle:
                yield PayoutInstruction.from_json(json.loads(line))

    def describe_totals(self) -> str:
        """``12.50 EUR, 3.00 USD`` (for logs)."""
        return ", ".join(format_amount(v, c) for c, v in sorted(self.totals.items())) or "nothing"

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> ValidatedBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def validate_batch(
    source: Any,
    context: Mapping[str, Any] | None = None,
    *,
    on_error: Callable[[StripeInputError], None] | None = None,
) -> ValidatedBatch:
    """Read and validate every item; spool the valid batch, or raise listing every problem.

    :param on_error: called with every problem found (e.g. to log each one), including
        those beyond :data:`MAX_ERRORS_KEPT`.
    """
    fd, name = tempfile.mkstemp(prefix="stripe-payouts-", suffix=".jsonl")
    spool = Path(name)
    seen: dict[int, int] = {}  # 64-bit digest of each reference -> its first index
    kept: list[StripeInputError] = []
    total_errors = invalid = count = 0
    totals: dict[str, int] = {}

    def report(error: StripeInputError) -> None:
        nonlocal total_errors
        total_errors += 1
        if len(kept) < MAX_ERRORS_KEPT:
            kept.append(error)
        if on_error is not None:
            on_error(error)

    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for index, raw in enumerate(iter_source(source, context)):
                count += 1
                if isinstance(raw, UnreadableItem):
                    invalid += 1
                    report(StripeInputError(raw.message, field="json", index=index))
                    continue
                instruction, errors = check_instruction(raw, index)
                if instruction is None:
                    invalid += 1
                    for error in errors:
                        report(error)
                    continue
                digest = int.from_bytes(hashlib.blake2b(instruction.reference.encode(), digest_size=8).digest(), "big")
                first = seen.setdefault(digest, index)
                if first != index:
                    invalid += 1
                    report(
                        StripeInputError(
                            f"duplicate of item {first}: each payout needs its own reference (identical items "
                            "without a reference get the same content hash); give them distinct references, or "
                            "remove the duplicate",
                            field="reference",
                            index=index,
                            reference=instruction.reference,
                        )
                    )
                    continue
                if not invalid:
                    totals[instruction.currency] = totals.get(instruction.currency, 0) + instruction.amount
                    out.write(json.dumps(instruction.to_json(), separators=(",", ":")) + "\n")
        if invalid:
            raise StripeBatchInputError(kept, invalid_items=invalid, total_items=count, total_errors=total_errors)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            spool.unlink()
        raise
    return ValidatedBatch(path=spool, count=count, totals=totals)

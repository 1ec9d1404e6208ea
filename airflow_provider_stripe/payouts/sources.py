"""Where a batch's payout instructions come from (a list, a JSON/JSONL file or URL, a callable), and
:func:`validate_batch`: one streamed pass that spools the valid batch or raises listing every problem."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from airflow_provider_stripe.compat import is_object_storage_path
from airflow_provider_stripe.errors import SourceError, StripeBatchInputError, StripeInputError
from airflow_provider_stripe.payouts.instructions import PayoutInstruction, check_instruction
from airflow_provider_stripe.validation import format_totals

MAX_ERRORS_KEPT = 200
"""Problems kept (and shown) in a :class:`StripeBatchInputError`; all are counted and logged."""

_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class UnreadableItem:
    """A line or element of a file that is not JSON; reported like an invalid item."""

    message: str


def iter_source(source: Any, context: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """Yield the raw items of any supported source, lazily."""
    if callable(source) and not isinstance(source, (str, os.PathLike)):
        # Called directly (outside Airflow's renderer), a callable gets the arguments Airflow passes.
        yield from iter_source(source(context=context, jinja_env=None), context)
        return
    if source is None:
        raise SourceError("payouts is None: pass a list of payout dicts, a JSON/JSONL path, or a callable")
    if isinstance(source, str) and source.lstrip().startswith(("[", "{")):
        raise SourceError(
            "payouts is a string holding a list, not a list: a Jinja template renders to text. Pass the XCom "
            "itself (e.g. payouts=task.output), or set render_template_as_native_obj=True on the DAG"
        )
    if isinstance(source, (str, os.PathLike)) or is_object_storage_path(source):
        yield from _iter_file(source)
        return
    if isinstance(source, Mapping):
        raise SourceError("payouts is a single dict: pass a list of payout dicts (one per payout)")
    if isinstance(source, (bytes, bytearray)) or not isinstance(source, Iterable):
        raise SourceError(f"payouts is a {type(source).__name__}: pass a list, a JSON/JSONL path or a callable")
    yield from source


def _iter_file(path: Any) -> Iterator[Any]:
    """The items of a local path, or any ObjectStoragePath / URL (``s3://``, ``file://``...)."""
    from airflow_provider_stripe.storage import open_text, resolve

    target = resolve(path, field="payouts")
    if not is_object_storage_path(target) and not target.is_file():
        raise SourceError(f"payouts file {str(path)!r} does not exist (or is not a file) on this worker")
    with open_text(target) as handle:
        if Path(str(path)).suffix.lower() in _JSONL_SUFFIXES:
            yield from _iter_jsonl(handle)
            return
        first = handle.read(1)
        while first.isspace():
            first = handle.read(1)
        yield from (_JsonArrayReader(handle, path) if first == "[" else _iter_jsonl(handle, first))


class _DuplicateKey(ValueError):
    """A JSON object names the same key twice: which value was meant cannot be known."""


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing duplicate keys, which ``json`` would resolve silently (a wrong amount)."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(f"the key {key!r} appears twice in one object; keep only the value you mean")
        obj[key] = value
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicate_keys)


def _iter_jsonl(handle: IO[str], prefix: str = "") -> Iterator[Any]:
    """One JSON value per non-blank line; a line that is not JSON (or repeats a key) is an :class:`UnreadableItem`."""
    lines = iter(handle)
    for number, line in enumerate(itertools.chain([prefix + next(lines, "")], lines), start=1):
        if not line.strip():
            continue
        try:
            yield _DECODER.decode(line)
        except json.JSONDecodeError as exc:
            yield UnreadableItem(f"line {number} is not JSON ({exc.msg} at column {exc.colno})")
        except _DuplicateKey as exc:
            yield UnreadableItem(f"line {number}: {exc}")


class _JsonArrayReader:
    """Streams the elements of a JSON array (its ``[`` read), accepting a value only once a character
    follows it, so a number split across reads is never taken whole."""

    def __init__(self, handle: IO[str], path: Any) -> None:
        self.handle = handle
        self.path = path
        self.buffer, self.pos, self.eof = "", 0, False

    def __iter__(self) -> Iterator[Any]:
        expect_value = True  # after '[' or ','
        first_element = True
        while True:
            self._skip_ws()
            if self.pos >= len(self.buffer):
                raise self._fail("it ends before the closing ]")
            char = self.buffer[self.pos]
            if char == "]" and (first_element or not expect_value):
                self.pos += 1
                break
            if not expect_value:
                if char != ",":
                    raise self._fail(f"expected ',' or ']' but found {char!r}")
                self.pos += 1
                expect_value = True
                continue
            yield self._value()
            expect_value = first_element = False
        self._skip_ws()
        if self.pos < len(self.buffer):
            raise self._fail("there is content after the closing ]")

    def _value(self) -> Any:
        """Decode the value at the current position, reading on until it is complete."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.pos)
            except _DuplicateKey as exc:
                raise self._fail(str(exc)) from None
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise self._fail(exc.msg) from None
                self._refill()
                continue
            if end >= len(self.buffer) and not self.eof:
                self._refill()
                continue
            self.pos = end
            return value

    def _refill(self) -> bool:
        chunk = self.handle.read(_READ_CHUNK)
        self.buffer, self.pos = self.buffer[self.pos :] + chunk, 0
        self.eof = not chunk
        return bool(chunk)

    def _skip_ws(self) -> None:
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos].isspace():
                self.pos += 1
            if self.pos < len(self.buffer) or not self._refill():
                return

    def _fail(self, what: str) -> SourceError:
        return SourceError(f"payouts file {str(self.path)!r} is not a valid JSON array: {what}")


@dataclass
class ValidatedBatch:
    """Every instruction of a batch, validated and spooled; iterate it as often as needed, ``close`` deletes it."""

    path: Path
    count: int
    totals: dict[str, int] = field(default_factory=dict)
    explicit_references: int = 0  # items named by the user (PayoutInstruction.has_explicit_reference)
    digest: str = ""
    """SHA-256 of the validated, normalised instructions in order: names exactly what would be paid
    (the approval gate compares the batch it pays with the one a person approved)."""

    def __iter__(self) -> Iterator[PayoutInstruction]:
        with self.path.open("r", encoding="utf-8") as handle:
            for line in handle:
                yield PayoutInstruction(**json.loads(line))  # validated when it was written

    def describe_totals(self) -> str:
        """``12.50 EUR, 3.00 USD`` (for logs)."""
        return format_totals(self.totals)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> ValidatedBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_item(raw: Any, index: int, seen: dict[int, int]) -> tuple[PayoutInstruction | None, list[StripeInputError]]:
    """Validate one item of a batch, including that no earlier item (in ``seen``) has its reference."""
    if isinstance(raw, UnreadableItem):
        return None, [StripeInputError(raw.message, field="json", index=index)]
    instruction, errors = check_instruction(raw, index)
    if instruction is None:
        return None, errors
    digest = int.from_bytes(hashlib.blake2b(instruction.reference.encode(), digest_size=8).digest(), "big")
    first = seen.setdefault(digest, index)
    if first == index:
        return instruction, []
    duplicate = StripeInputError(
        f"duplicate of item {first}: each payout needs its own reference (identical items without a reference "
        "get the same content hash); give them distinct references, or remove the duplicate",
        field="reference",
        index=index,
        reference=instruction.reference,
    )
    return None, [duplicate]


def validate_batch(
    source: Any, context: Mapping[str, Any] | None = None, *, on_error: Callable[[StripeInputError], None] | None = None
) -> ValidatedBatch:
    """Read and validate every item; spool the valid batch, or raise listing every problem (``on_error`` gets
    every one, those beyond :data:`MAX_ERRORS_KEPT` too)."""
    fd, name = tempfile.mkstemp(prefix="stripe-payouts-", suffix=".jsonl")
    spool = Path(name)
    seen: dict[int, int] = {}  # 64-bit digest of each reference -> its first index
    kept: list[StripeInputError] = []
    total_errors = invalid = count = explicit = 0
    totals: dict[str, int] = {}
    digest = hashlib.sha256()

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
                instruction, errors = _check_item(raw, index, seen)
                if instruction is None:
                    invalid += 1
                    for error in errors:
                        report(error)
                elif not invalid:
                    totals[instruction.currency] = totals.get(instruction.currency, 0) + instruction.amount
                    explicit += instruction.has_explicit_reference
                    line = json.dumps(instruction.to_json(), separators=(",", ":"), sort_keys=True) + "\n"
                    digest.update(line.encode())
                    out.write(line)
        if invalid:
            raise StripeBatchInputError(kept, invalid_items=invalid, total_items=count, total_errors=total_errors)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            spool.unlink()
        raise
    return ValidatedBatch(
        path=spool, count=count, totals=totals, explicit_references=explicit, digest=digest.hexdigest()
    )

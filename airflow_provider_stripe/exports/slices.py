"""Time-sliced, parallel, resumable reads of one Stripe list window (the exports' reading side).

One listing is latency-bound; slices of whole ``created`` seconds (each object in exactly one)
are read concurrently, spooled to JSON Lines files (flat memory; a retry skips finished ones)
and yielded newest first: the same sequence a sequential read gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.storage import atomic_open

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

Slice = tuple[int, int]
"""``(gte, lt)``: integer epoch seconds, ``gte < lt``."""

SLICES_PER_WORKER = 4
"""Slices planned per worker: more slices than workers, so a slice denser than the others
does not leave the other workers idle at the end."""


def plan_slices(gte: int, lt: int, count: int) -> list[Slice]:
    """``[gte, lt)`` cut into ``count`` adjacent integer slices (at most one per second), newest first."""
    count = max(1, min(count, lt - gte))
    bounds = [gte + (lt - gte) * i // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1]) for i in reversed(range(count))]


def spool_directory(target: Path | ObjectStoragePath, identity: Mapping[str, Any]) -> Path | ObjectStoragePath:
    """Where one export's finished slices wait: a hidden directory beside ``target``, keyed by a digest
    of ``identity`` (what decides the rows), so only a retry of the same export finds them."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return target.parent / f".{target.name}.slices-{digest}"


@dataclass(frozen=True)
class SliceSpool:
    """The finished slices of one export, one JSON Lines file each (``<gte>-<lt>.jsonl``)."""

    directory: Path | ObjectStoragePath

    def path(self, piece: Slice) -> Path | ObjectStoragePath:
        return self.directory / f"{piece[0]}-{piece[1]}.jsonl"

    def finished_slices(self) -> set[Slice]:
        """The slices finished so far (by this try or an earlier one, whatever its plan)."""
        if not self.directory.exists():
            return set()
        found: set[Slice] = set()
        for entry in self.directory.iterdir():
            name = entry.name
            if name.startswith(".") or not name.endswith(".jsonl"):
                continue  # a slice being written (its temporary name)
            low, _, high = name[: -len(".jsonl")].partition("-")
            if low.isdigit() and high.isdigit():
                found.add((int(low), int(high)))
        return found

    def write(self, piece: Slice, rows: Iterator[Mapping[str, Any]]) -> int:
        """Stream ``rows`` into the slice's file, renamed into place only once complete; return the count."""
        count = 0
        with atomic_open(self.path(piece)) as handle:
            for row in rows:
                handle.write(json.dumps(row, separators=(",", ":"), default=str).encode() + b"\n")
                count += 1
        return count

    def read(self, piece: Slice) -> Iterator[dict[str, Any]]:
        with self.path(piece).open("rb") as handle:
            for line in handle:
                yield json.loads(line)

    def remove(self) -> None:
        if not self.directory.exists():
            return
        for entry in self.directory.iterdir():
            entry.unlink()
        with contextlib.suppress(OSError):  # object storage may have no directory object to remove
            self.directory.rmdir()


@dataclass
class SlicedRead:
    """What a sliced read did: slices planned, read by this try, and kept from an earlier one."""

    planned: int = 0
    read: int = 0
    kept: int = 0


def _await(future: Future[int], running: Collection[Future[int]]) -> None:
    """Wait for ``future``; fail as soon as any slice fails (not only when its turn comes)."""
    while not future.done():
        done, _ = wait([f for f in running if not f.done()], return_when=FIRST_COMPLETED)
        for finished in done:
            error = finished.exception()
            if error is not None:
                raise error
    future.result()


def read_slices(
    read: Callable[[int, int], Iterator[Mapping[str, Any]]],
    slices: Sequence[Slice],
    spool: SliceSpool,
    max_workers: int,
    stats: SlicedRead | None = None,
) -> Iterator[dict[str, Any]]:
    """Every row of ``slices`` (read concurrently by ``read(gte, lt)``, spooled ones skipped), in order.
    On a failure, running slices finish (kept for the retry), others are cancelled; the first error is raised."""
    stats = stats if stats is not None else SlicedRead()
    stats.planned = len(slices)
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="stripe-export")
    futures: dict[Slice, Future[int]] = {}
    try:
        for piece in slices:
            if spool.path(piece).exists():  # read completely by an earlier try
                stats.kept += 1
            else:
                futures[piece] = pool.submit(spool.write, piece, read(*piece))
        for piece in slices:
            future = futures.get(piece)
            if future is not None:
                _await(future, futures.values())
                stats.read += 1
            yield from spool.read(piece)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

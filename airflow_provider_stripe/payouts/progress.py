"""A batch's per-item progress, kept in Airflow's task state store (AIP-103, Airflow 3.3+).

For every item the store holds its key *generation* and its last known outcome, so a
retry resumes where the last attempt stopped: created items are not requested again,
items whose response was lost reuse their key, and items that Stripe refused move to a
fresh key. A new generation is written (and flushed) *before* its first request is
sent, so after a crash a retry never forgets which key may have paid.

Layout (compact JSON, a few bytes per item): ``stripe_payout_batch`` holds
``{"v": 1, "chunks": n, "first_attempt": iso}``; ``stripe_payout_batch/<i>`` holds
``{reference: entry}`` for the references hashed to chunk ``i``, where an entry is just
the payout id for the common case (created with the first key), else
``[generation, code, payout_id?]``. Chunks keep each value far below the store's 64 KB per-value policy (about
:data:`CHUNK_ITEMS` items each), and only changed chunks are rewritten, at most every
``flush_interval`` seconds (outcomes lost in a crash are re-learnt from Stripe: the key
is the same, or the payout is found by listing).

Without a store (Airflow < 3.3, or an operator run outside a task), the same object
remembers nothing (each item is planned once per try, so memory would not help);
:attr:`remembered` is then ``False``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

STATE_KEY = "stripe_payout_batch"
CHUNK_ITEMS = 200
FORMAT_VERSION = 1

Code = Literal["sent", "ok", "refused", "unknown"]
"""``sent``: a request with this generation may have been sent; ``ok``: the payout exists;
``refused``: Stripe refused it definitively (nothing created); ``unknown``: the answer was
lost or transient (the payout may exist)."""

_CODES: dict[str, Code] = {"s": "sent", "ok": "ok", "r": "refused", "u": "unknown"}
_SHORT: dict[Code, str] = {v: k for k, v in _CODES.items()}


@dataclass(frozen=True)
class ItemState:
    """What the store remembers about one item."""

    generation: int
    code: Code
    payout_id: str | None = None


def _encode(generation: int, code: Code, payout_id: str | None) -> Any:
    if generation == 0 and code == "ok" and payout_id:
        return payout_id
    return [generation, _SHORT[code]] + ([payout_id] if payout_id else [])


def _decode(entry: Any) -> ItemState | None:
    if entry is None:
        return None
    if isinstance(entry, str):
        return ItemState(0, "ok", entry)
    return ItemState(int(entry[0]), _CODES[entry[1]], entry[2] if len(entry) > 2 else None)


def _is_created(entry: Any) -> bool:
    state = _decode(entry)
    return state is not None and state.code == "ok"


class PayoutProgress:
    """Per-item generations and outcomes; durable when given a task state store."""

    def __init__(self, store: Any | None, *, flush_interval: float = 2.0) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self._chunks: list[dict[str, Any]] = [{}]
        self._dirty: set[int] = set()
        self._last_flush = time.monotonic()
        self.first_attempt: datetime | None = None
        self.resumed = False

    @property
    def remembered(self) -> bool:
        """True when progress survives the process (a task state store is in use)."""
        return self.store is not None

    def load(self, item_count: int) -> None:
        """Read what earlier tries stored, or write the header of a first try (before any payout)."""
        if self.store is None:
            self.first_attempt = datetime.now(timezone.utc)
            return
        meta = self.store.get(STATE_KEY, None)
        if isinstance(meta, dict) and meta.get("v") == FORMAT_VERSION:
            chunks = int(meta["chunks"])
            self.first_attempt = datetime.fromisoformat(str(meta["first_attempt"]))
            self._chunks = [dict(self.store.get(f"{STATE_KEY}/{i}", None) or {}) for i in range(chunks)]
            self.resumed = True
            return
        chunks = max(1, -(-item_count // CHUNK_ITEMS))
        self.first_attempt = datetime.now(timezone.utc)
        self._chunks = [{} for _ in range(chunks)]
        self.store.set(
            STATE_KEY, {"v": FORMAT_VERSION, "chunks": chunks, "first_attempt": self.first_attempt.isoformat()}
        )

    def _chunk(self, reference: str) -> int:
        digest = hashlib.blake2b(reference.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % len(self._chunks)

    def get(self, reference: str) -> ItemState | None:
        """The remembered state of an item, if any."""
        return _decode(self._chunks[self._chunk(reference)].get(reference))

    def created_count(self) -> int:
        """How many items are remembered as created."""
        return sum(1 for chunk in self._chunks for entry in chunk.values() if _is_created(entry))

    def record(self, reference: str, generation: int, code: Code, payout_id: str | None = None) -> None:
        """Remember an item's state. A ``sent`` of a new generation is written to the store at once."""
        if self.store is None:
            return
        index = self._chunk(reference)
        chunk = self._chunks[index]
        previous = _decode(chunk.get(reference))
        entry = _encode(generation, code, payout_id)
        if chunk.get(reference) == entry:
            return
        chunk[reference] = entry
        self._dirty.add(index)
        if code == "sent" and generation > 0 and (previous is None or previous.generation != generation):
            # Write-ahead: the store must know this generation before Stripe can see it.
            self._flush({index})

    def flush(self, *, force: bool = False) -> None:
        """Write changed chunks, at most every ``flush_interval`` seconds unless ``force``."""
        if self._dirty and (force or time.monotonic() - self._last_flush >= self.flush_interval):
            self._flush(set(self._dirty))

    def _flush(self, indexes: set[int]) -> None:
        if self.store is not None:
            for index in sorted(indexes):
                self.store.set(f"{STATE_KEY}/{index}", self._chunks[index])
        self._dirty -= indexes
        self._last_flush = time.monotonic()

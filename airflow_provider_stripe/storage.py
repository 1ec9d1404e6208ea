"""One way to open a path: a local file or any Airflow ``ObjectStoragePath`` (``s3://``, ``gs://``...).

Every file the provider reads or writes goes through here: payout instructions
(:mod:`.payout_batch.sources`), batch results (:mod:`.payout_batch.results`), exports,
reconciliation rows and report files (:mod:`.formats`).

* :func:`resolve` turns what a user passed (a path, a URL, an ``ObjectStoragePath``) into a
  local :class:`~pathlib.Path` or an ``ObjectStoragePath`` (``file://`` URLs become local).
* :func:`atomic_open` writes so that the target is replaced only once the content is
  complete: a temporary file renamed over it locally; in object storage a sibling
  ``.<name>.part`` object moved into place (closing an object commits it, even after an
  error, so the target itself is never half-written).
* :func:`open_text` reads text from either kind.

On Airflow 3.1 an ``ObjectStoragePath`` is also a ``pathlib.Path``, so the two are told apart
by :func:`airflow_provider_stripe.compat.is_object_storage_path`, never by ``isinstance``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.compat import is_object_storage_path
from airflow_provider_stripe.errors import StripeInputError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def resolve(path: Any, conn_id: str | None = None, *, field: str = "path") -> Path | ObjectStoragePath:
    """A local ``Path``, or an ``ObjectStoragePath`` for URLs (``file://`` becomes local).

    :param conn_id: the connection of an object storage URL (``storage_conn_id``).
    :param field: the parameter named in the error when ``path`` is neither.
    """
    from airflow.sdk import ObjectStoragePath

    raw = path
    if not raw or (not isinstance(raw, (str, os.PathLike)) and not is_object_storage_path(raw)):
        raise StripeInputError(f"{raw!r}: pass a file path or an object storage URL", field=field)
    if isinstance(raw, str) and "://" in raw:
        raw = ObjectStoragePath(raw, conn_id=conn_id)
    if is_object_storage_path(raw):
        return Path(raw.path) if raw.protocol in ("file", "local") else raw
    return Path(raw)


@contextlib.contextmanager
def atomic_open(target: Path | ObjectStoragePath, mode: Literal["wb", "w"] = "wb") -> Iterator[IO[Any]]:
    """A handle (binary, or UTF-8 text with ``mode="w"``) whose content replaces ``target``
    only if the block completes."""
    encoding = None if "b" in mode else "utf-8"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not is_object_storage_path(target):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, mode, encoding=encoding) as handle:
                yield handle
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    part = target.parent / f".{target.name}.part"
    try:
        with part.open(mode, encoding=encoding) as handle:
            yield handle
        part.rename(target)
    except BaseException:
        if part.exists():
            part.unlink()
        raise


def open_text(target: Path | ObjectStoragePath) -> IO[str]:
    """Open a resolved path for reading UTF-8 text (close it, e.g. in a ``with`` block)."""
    return target.open("r", encoding="utf-8")

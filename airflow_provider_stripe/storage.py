"""One way to open every file the provider reads or writes: a local path or any Airflow
``ObjectStoragePath``; writes replace the target only once complete (:func:`atomic_open`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.compat import is_object_storage_path
from airflow_provider_stripe.errors import StripeInputError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

_SEGMENTS = re.compile(r"[/\\]")
"""What separates a path's segments, locally or in a URL (a backslash too: Windows-style paths)."""


def resolve(
    path: Any, conn_id: str | None = None, *, field: str = "path", template: Any = None
) -> Path | ObjectStoragePath:
    """A local ``Path``, or an ``ObjectStoragePath`` for URLs (``file://`` becomes local).

    :param template: the path as the DAG wrote it: a rendered ``..`` segment it lacks is refused, so
        a templated value (run conf, a mapped account) cannot climb out of the DAG's folder.
    """
    from airflow.sdk import ObjectStoragePath

    if not path or (not isinstance(path, (str, os.PathLike)) and not is_object_storage_path(path)):
        raise StripeInputError(f"{path!r}: pass a file path or an object storage URL", field=field)
    if isinstance(template, str) and ".." in _SEGMENTS.split(str(path)) and ".." not in _SEGMENTS.split(template):
        raise StripeInputError(
            f"{str(path)!r} climbs out of its folder with '..', which its template {template!r} does not: "
            "check the values rendered into it (run conf, params, mapped values)",
            field=field,
        )
    if isinstance(path, str) and "://" in path:
        path = ObjectStoragePath(path, conn_id=conn_id)
    if is_object_storage_path(path):
        return Path(path.path) if path.protocol in ("file", "local") else path
    return Path(path)


STALE_PART_AGE_S = 60
"""A target's part file older than this (by its last write) that no writer holds is a crashed
write's leftover. The age only covers the instant between a part's creation and its lock."""


def _create_part(target: Path) -> tuple[int, Path]:
    """A new part file beside ``target``, locked while open, with the replaced file's mode (or the umask's default)."""
    existing = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
    while True:
        part = target.parent / f".{target.name}.{secrets.token_hex(8)}.part"
        try:
            fd = os.open(
                part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if existing is None else existing
            )
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if existing is not None:
                os.fchmod(fd, existing)
        except BaseException:
            os.close(fd)
            part.unlink(missing_ok=True)
            raise
        return fd, part


def remove_stale_parts(target: Path, *, keep: Path) -> None:
    """Remove ``target``'s part files but ``keep`` left by crashed writes: unlocked (its writer died)
    and older than :data:`STALE_PART_AGE_S`."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]+\.part")  # its parts, no other target's
    now = time.time()
    with os.scandir(target.parent) as entries:
        candidates = [e for e in entries if pattern.fullmatch(e.name) and e.name != keep.name]
    for entry in candidates:
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat().st_mtime < STALE_PART_AGE_S:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # gone meanwhile (renamed into place, or removed by another writer)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(entry.path)
        except OSError:  # held by a live writer, or already gone
            continue
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(target: Path | ObjectStoragePath, mode: Literal["wb", "w"] = "wb") -> Iterator[IO[Any]]:
    """A handle (binary, or UTF-8 text with ``mode="w"``) whose content replaces ``target``
    only if the block completes."""
    encoding = None if "b" in mode else "utf-8"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not is_object_storage_path(target):
        fd, tmp = _create_part(target)
        try:
            with os.fdopen(fd, mode, encoding=encoding) as handle:
                remove_stale_parts(target, keep=tmp)
                yield handle
                handle.flush()
                os.replace(tmp, target)  # under the lock: a cleaner never sees this part unlocked
        except BaseException:
            tmp.unlink(missing_ok=True)
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

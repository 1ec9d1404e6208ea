"""The one place that knows how the supported Airflow versions (3.1, 3.2, 3.3) differ.

Every other module imports version-dependent names from here, so no ``try/except ImportError``
or version test is scattered through the provider. What differs:

* ``conf`` and the task exceptions (``AirflowFailException``, ``TaskDeferred``, ...) live in ``airflow.sdk`` /
  ``airflow.sdk.exceptions`` from 3.2; 3.1 has them only in ``airflow.configuration`` /
  ``airflow.exceptions`` (which 3.1's task runner catches).
* ``CronDataIntervalTimetable`` is exported by ``airflow.sdk`` from 3.2; 3.1 has it in
  ``airflow.timetables.interval``.
* The task state store (``context["task_state_store"]``) and a trigger's asset state store
  (``BaseEventTrigger.asset_state_store``, AIP-103) exist from 3.3 only: :func:`task_state_store`
  and :func:`asset_state_store` return ``None`` before, and callers fall back as documented.
* ``DagBag`` moved from ``airflow.models.dagbag`` (3.1) to ``airflow.dag_processing.dagbag``:
  :func:`dagbag_module` (for the demo and the tests).
* An asset's stored watchers are ``AssetModel.watchers`` from 3.2; 3.1 links the asset to its
  watchers' triggers directly (``AssetModel.triggers``): :func:`watcher_trigger_ids` (for the tests).
* ``ObjectStoragePath`` subclasses ``pathlib.Path`` on 3.1 (universal_pathlib 0.2), so
  ``isinstance(p, Path)`` does not tell a local file from an object URL:
  :func:`is_object_storage_path` does, on every version.
* Airflow's human-in-the-loop operators (``airflow.providers.standard.operators.hitl``, for the
  payout approval gate) need Airflow 3.1+ and a standard provider that ships them:
  :func:`approval_operator` returns ``ApprovalOperator`` or fails with what to install.
* A trigger's blocking call that talks to Airflow (a connection lookup, ``mask_secret``) sends a
  message to the triggerer's supervisor. Airflow 3.1 serializes those messages only among
  coroutines of the trigger runner's event loop: sent from a plain thread (``asyncio.to_thread``),
  one races the runner's own messages, a reply is read by the wrong side ("Response read out of
  order!") and the whole trigger runner dies, every trigger with it. 3.2+ bridges calls from any
  thread. :func:`run_blocking` runs such a call so that it is safe on every version.

And the one difference between the supported stripe SDKs (14 to 16): a ``stripe.StripeObject``
is a ``dict`` up to stripe 14 and not since stripe 15 (no ``.get``), and callers may hand in
plain dicts: :func:`as_dict` and :func:`read_field` read either the same way.

Type checkers see the newest Airflow's names (``TYPE_CHECKING``); at run time the branch for the
installed version is taken. Importing this module imports only ``airflow`` itself, ``airflow.sdk``
and its exceptions (all imported by any DAG file anyway), never the Stripe SDK.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import airflow

if TYPE_CHECKING:
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.sdk import ObjectStoragePath
    from typing_extensions import TypeIs

__all__ = [
    "AIRFLOW_VERSION",
    "HAS_STATE_STORES",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "CronDataIntervalTimetable",
    "TaskDeferred",
    "approval_operator",
    "as_dict",
    "asset_state_store",
    "conf",
    "dagbag_module",
    "is_object_storage_path",
    "read_field",
    "run_blocking",
    "task_state_store",
    "watcher_trigger_ids",
]


_T = TypeVar("_T")


def _release(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string such as ``3.2.2`` or ``3.3.0rc1``."""
    major, minor = [*version.split("."), "0"][:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


AIRFLOW_VERSION: tuple[int, int] = _release(airflow.__version__)
"""The installed Airflow's ``(major, minor)``."""

HAS_STATE_STORES: bool = AIRFLOW_VERSION >= (3, 3)
"""Whether tasks get a task state store and event triggers an asset state store (Airflow >= 3.3)."""

if TYPE_CHECKING or AIRFLOW_VERSION >= (3, 2):
    from airflow.sdk import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
else:  # Airflow 3.1
    from airflow.configuration import conf
    from airflow.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )

if TYPE_CHECKING:
    from airflow.sdk import CronDataIntervalTimetable


def __getattr__(name: str) -> Any:
    """``CronDataIntervalTimetable``, imported on first use: it loads croniter (about 7 ms), which
    no operator or sensor needs when a DAG file is parsed, only DAGs scheduled with it."""
    if name != "CronDataIntervalTimetable":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if AIRFLOW_VERSION >= (3, 2):
        return importlib.import_module("airflow.sdk").CronDataIntervalTimetable
    return importlib.import_module("airflow.timetables.interval").CronDataIntervalTimetable


def dagbag_module() -> ModuleType:
    """The module with ``DagBag`` and ``sync_bag_to_db`` (``airflow.dag_processing.dagbag`` from 3.2).

    A function, not an import: loading DAG bags is for tools (the demo, tests), never at DAG-parse time.
    """
    if AIRFLOW_VERSION >= (3, 2):
        return importlib.import_module("airflow.dag_processing.dagbag")
    return importlib.import_module("airflow.models.dagbag")


def approval_operator() -> type[ApprovalOperator]:
    """Airflow's human-in-the-loop ``ApprovalOperator``; an ``ImportError`` saying what to install without it.

    Called by a DAG file at parse time, so a missing operator shows as the DAG's import error with
    this message, instead of a bare ``ModuleNotFoundError``.
    """
    try:
        from airflow.providers.standard.operators.hitl import ApprovalOperator
    except Exception as exc:  # ImportError, or the provider's "needs Airflow 3.1+" feature exception
        from importlib.metadata import PackageNotFoundError, version

        try:
            standard = version("apache-airflow-providers-standard")
        except PackageNotFoundError:
            standard = "not installed"
        raise ImportError(
            "The payout approval gate needs Airflow's human-in-the-loop operators "
            "(airflow.providers.standard.operators.hitl: Airflow 3.1+ and an apache-airflow-providers-standard "
            f"that ships them); here: Airflow {airflow.__version__}, apache-airflow-providers-standard {standard} "
            f"({type(exc).__name__}: {exc}). Upgrade them, or pay without a human gate: StripePayoutBatchOperator "
            "with max_items / max_total, and a dry_run=True task to review the batch first."
        ) from exc
    return ApprovalOperator


def watcher_trigger_ids(asset: Any) -> list[int]:
    """Ids of the trigger rows of a stored asset's watchers (an ``AssetModel`` in a session)."""
    if AIRFLOW_VERSION >= (3, 2):
        return [watcher.trigger_id for watcher in asset.watchers]
    return [trigger.id for trigger in asset.triggers]


def task_state_store(context: Any) -> Any | None:
    """The running task's state store (Airflow >= 3.3), else ``None``."""
    return context.get("task_state_store")


def asset_state_store(trigger: Any) -> Any | None:
    """An event trigger's asset state store when it runs as an asset watcher on Airflow >= 3.3, else ``None``."""
    return getattr(trigger, "asset_state_store", None)


def is_object_storage_path(path: object) -> TypeIs[ObjectStoragePath]:
    """Whether ``path`` is an Airflow ``ObjectStoragePath`` (a URL), not a local ``pathlib.Path``."""
    from airflow.sdk import ObjectStoragePath

    return isinstance(path, ObjectStoragePath)


async def run_blocking(func: Callable[..., _T], *args: Any) -> _T:
    """``await func(*args)`` in a worker thread, for blocking code that may message Airflow's supervisor.

    Like ``asyncio.to_thread``, but through asgiref's ``sync_to_async`` (Airflow's own dependency,
    used by its ``BaseHook.aget_connection``): a supervisor message sent from that thread is then
    sent by the calling event loop, under the lock that keeps each reply with its request.
    Needed on Airflow 3.1, where a plain thread's message can kill the trigger runner (see the
    module docstring); harmless on 3.2+, so every version takes the same path.
    """
    from asgiref.sync import sync_to_async

    return await sync_to_async(func, thread_sensitive=False)(*args)


def as_dict(obj: Any) -> dict[str, Any]:
    """A plain, recursive dict of a StripeObject (or of a plain dict, returned as it is).

    stripe 15+ has ``to_dict()`` (recursive). Up to stripe 14 a StripeObject is itself a
    ``dict`` whose ``to_dict()`` is shallow and deprecated: each call emits a
    ``DeprecationWarning``, which a caller recording warnings (pytest, ``warnings.catch_warnings
    (record=True)``) keeps once per exported object. So the stripe 14 object is copied here.
    """
    if isinstance(obj, dict):
        return obj if type(obj) is dict else _plain_copy(obj)
    to_dict = getattr(obj, "to_dict", None)
    if to_dict is not None:
        return dict(to_dict())
    return dict(obj)


def _plain_copy(value: Any) -> Any:
    """``value`` with every dict subclass (a stripe 14 StripeObject) made a plain dict, lists walked."""
    if isinstance(value, dict):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_copy(item) for item in value]
    return value


def read_field(obj: Any, name: str) -> Any:
    """``obj[name]`` of a dict or StripeObject, else the attribute, else ``None``."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return obj[name]
    except (KeyError, TypeError, IndexError):
        return getattr(obj, name, None)

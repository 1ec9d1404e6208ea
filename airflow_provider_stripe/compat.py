"""The one place that knows how the supported Airflow versions (3.1-3.3) and stripe SDKs (14-16) differ.
Type checkers see the newest names. Imports only ``airflow``, never the Stripe SDK."""

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


_T = TypeVar("_T")


def _release(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string such as ``3.2.2`` or ``3.3.0rc1``."""
    major, minor = [*version.split("."), "0"][:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


AIRFLOW_VERSION: tuple[int, int] = _release(airflow.__version__)

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
    from airflow.configuration import conf  # noqa: F401 (re-exported)
    from airflow.exceptions import (  # noqa: F401 (re-exported)
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )

if TYPE_CHECKING:
    from airflow.sdk import CronDataIntervalTimetable  # noqa: F401 (re-exported)


def __getattr__(name: str) -> Any:
    """``CronDataIntervalTimetable``, imported on first use: it loads croniter (about 7 ms), which
    no operator or sensor needs when a DAG file is parsed, only DAGs scheduled with it."""
    if name != "CronDataIntervalTimetable":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if AIRFLOW_VERSION >= (3, 2):
        return importlib.import_module("airflow.sdk").CronDataIntervalTimetable
    return importlib.import_module("airflow.timetables.interval").CronDataIntervalTimetable


def dagbag_module() -> ModuleType:
    """The module with ``DagBag`` and ``sync_bag_to_db`` (moved in 3.2); for tools, never at DAG-parse time."""
    if AIRFLOW_VERSION >= (3, 2):
        return importlib.import_module("airflow.dag_processing.dagbag")
    return importlib.import_module("airflow.models.dagbag")


def approval_operator() -> type[ApprovalOperator]:
    """Airflow's human-in-the-loop ``ApprovalOperator``, or an ``ImportError`` saying what to install."""
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
    """``await func(*args)`` in a worker thread through asgiref's ``sync_to_async``: on Airflow 3.1 a
    plain thread's message to the supervisor can race the trigger runner's and kill it."""
    from asgiref.sync import sync_to_async

    return await sync_to_async(func, thread_sensitive=False)(*args)


def as_dict(obj: Any) -> dict[str, Any]:
    """A plain, recursive dict of a StripeObject or dict (stripe 14's ``to_dict`` is shallow and warns)."""
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

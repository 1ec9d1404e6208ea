"""OpenLineage for the warehouse operators: input ``stripe://<account>/<resource>``, output named
as Airflow's file-transfer operators do, with schema and statistics facets. No OpenLineage import
at module level: without it, nothing is reported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_stripe.compat import is_object_storage_path

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_stripe.exports.formats import Columns

OPENLINEAGE_TYPES = {
    "string": "STRING",
    "json": "STRING",
    "int64": "BIGINT",
    "timestamp": "TIMESTAMP",
    "float64": "DOUBLE",
    "boolean": "BOOLEAN",
}


def stripe_dataset(account_id: str | None, resource: str) -> tuple[str, str]:
    """``(namespace, name)`` of a Stripe resource: ``stripe://<account>`` (``platform``: the connection's own)
    and ``<resource>``."""
    return f"stripe://{account_id or 'platform'}", resource


def path_dataset(target: Path | ObjectStoragePath) -> tuple[str, str]:
    """``(namespace, name)`` of a written file: ``file`` + absolute path, or ``scheme://bucket`` + key."""
    if not is_object_storage_path(target):  # on Airflow 3.1 an ObjectStoragePath is a Path too
        return "file", str(target.resolve())
    protocol = target.protocol
    bucket = getattr(target, "bucket", "") or ""
    key = (getattr(target, "key", "") or target.path).lstrip("/")
    return (f"{protocol}://{bucket}" if bucket else protocol), key or "/"


class LineageRecord(NamedTuple):
    """What one task read and wrote."""

    inputs: tuple[tuple[str, str], ...]
    output: tuple[str, str]
    columns: Columns
    rows: int | None = None
    size: int | None = None


def operator_lineage(record: LineageRecord | None) -> Any:
    """The ``OperatorLineage`` of ``record``; ``None`` without the OpenLineage provider or a record."""
    if record is None:
        return None
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            OutputStatisticsOutputDatasetFacet,
            SchemaDatasetFacet,
            SchemaDatasetFacetFields,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    schema = SchemaDatasetFacet(
        fields=[SchemaDatasetFacetFields(name=name, type=OPENLINEAGE_TYPES[kind]) for name, kind in record.columns]
    )
    output_facets: dict[str, Any] = {"schema": schema}
    if record.rows is not None or record.size is not None:
        output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=record.rows, size=record.size)
    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in record.inputs],
        outputs=[Dataset(namespace=record.output[0], name=record.output[1], facets=output_facets)],
    )


def file_size(target: Path | ObjectStoragePath) -> int | None:
    """The written file's size in bytes, ``None`` if the store cannot say."""
    try:
        return int(target.stat().st_size)
    except (OSError, AttributeError, TypeError, ValueError):
        return None


class StripeLineageMixin:
    """``get_openlineage_facets_on_complete`` from the :class:`LineageRecord` a task left in ``stripe_lineage``."""

    stripe_lineage: LineageRecord | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:  # called by the OpenLineage provider
        return operator_lineage(self.stripe_lineage)

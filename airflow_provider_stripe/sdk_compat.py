"""Small bridges over differences between the supported stripe SDK versions (14 to 16).

A ``stripe.StripeObject`` is a ``dict`` up to stripe 14 and not since stripe 15 (no ``.get``),
and tests or callers may hand in plain dicts: these two helpers read either the same way.
Importing this module costs nothing (no SDK import).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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

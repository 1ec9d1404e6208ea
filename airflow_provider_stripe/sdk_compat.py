"""Small bridges over differences between the supported stripe SDK versions (14 to 16).

A ``stripe.StripeObject`` is a ``dict`` up to stripe 14 and not since stripe 15 (no ``.get``),
and tests or callers may hand in plain dicts: these two helpers read either the same way.
Importing this module costs nothing (no SDK import).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def as_dict(obj: Any) -> dict[str, Any]:
    """A plain, recursive dict of a StripeObject (16 has ``to_dict``; 14 is also a dict)."""
    if isinstance(obj, dict) and not hasattr(obj, "to_dict"):
        return obj
    to_dict = getattr(obj, "to_dict", None) or getattr(obj, "to_dict_recursive", None)
    if to_dict is not None:
        return dict(to_dict())
    return dict(obj)


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

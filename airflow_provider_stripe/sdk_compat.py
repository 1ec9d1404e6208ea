"""Small bridges over differences between the supported stripe SDK versions (14 to 16)."""

from __future__ import annotations

from typing import Any


def as_dict(obj: Any) -> dict[str, Any]:
    """A plain, recursive dict of a StripeObject (16 has ``to_dict``; 14 is also a dict)."""
    if isinstance(obj, dict) and not hasattr(obj, "to_dict"):
        return obj
    to_dict = getattr(obj, "to_dict", None) or getattr(obj, "to_dict_recursive", None)
    if to_dict is not None:
        return dict(to_dict())
    return dict(obj)

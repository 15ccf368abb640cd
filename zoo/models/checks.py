"""Checks of the arguments of the models' Python methods, shared so that each bad argument reads the same."""

from __future__ import annotations

import operator
from typing import Any

from torch import nn


def check_count(model: nn.Module, value: Any, call: str, what: str) -> int:
    """``value`` as an int >= 0 (0 asks for an empty result); else one ``ValueError`` naming ``call`` (the method
    and its arguments, ``"sample(n)"``) and ``what`` it counts (``"samples n"``)."""
    try:
        count = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        count = None
    if count is None or count < 0:
        raise ValueError(f"{type(model).__name__}.{call} takes a whole number of {what} >= 0, got {value!r}")
    return count

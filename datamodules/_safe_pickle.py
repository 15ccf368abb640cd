"""Unpickling dataset files without running code from them.

``pickle.load`` calls whatever global a file names (``os.system`` included) while it reads the file. A dataset
pickle such as a CIFAR-10 batch holds only dicts, lists, strings, numbers and numpy arrays, so :func:`load` admits
the few globals that rebuild a numpy array and refuses every other one *before* it is imported or called, with
an :class:`UnsafePickleError` naming the file and the global.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from datamodules._paths import CorruptDatasetError

#: the globals a pickled numpy array needs (numpy 1.x and 2.x module names), and ``_codecs.encode``, which
#: Python 3 writes for the bytes inside an array pickled with protocol 2 (copies rebuilt with Python 3).
NUMPY_ARRAY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
})


class UnsafePickleError(CorruptDatasetError, pickle.UnpicklingError):
    """A dataset pickle names a global outside the format's; the message names the file, the global and the fix."""


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``allowed`` ``(module, name)`` globals."""

    def __init__(self, file: Any, path: Path, allowed: frozenset[tuple[str, str]], what: str, fix: str) -> None:
        super().__init__(file, encoding="latin1")  # the official files were pickled by Python 2
        self.path, self.allowed, self.what, self.fix = path, allowed, what, fix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.path} is not {self.what} from the official archive: it names the global {module}.{name}, which "
            f"that format never uses (it holds dicts, lists, strings, numbers and numpy arrays only), and unpickling "
            f"it could run code from the file; it was not loaded. {self.fix}"
        )


def load(path: Path, what: str, fix: str, allowed: frozenset[tuple[str, str]] = NUMPY_ARRAY_GLOBALS) -> Any:
    """Unpickle ``path``, ``what`` (e.g. ``"a CIFAR-10 batch"``), admitting only the ``allowed`` globals.

    Raises :class:`UnsafePickleError` (whose message ends with ``fix``) for any other global; other errors of a
    damaged file (truncated, bad opcodes) propagate unchanged.
    """
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, path, allowed, what, fix).load()

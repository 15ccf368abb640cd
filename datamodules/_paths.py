"""Where datasets live: ``root`` arguments, the ``ZOO_DATA_DIR`` environment variable, and the errors for missing and
damaged dataset files (one place for all of them; each names the file and the fix).

The errors derive from the built-in types code caught before (``FileNotFoundError``, ``RuntimeError``,
``ValueError``); raised here, in the datamodules package, the ``zoo`` command prints them as one message with exit
status 2 (``zoo.errors.is_deliberate``) without a type of the zoo's own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional


DATA_DIR_ENV = "ZOO_DATA_DIR"
#: How the zoo reads users' text files (CoNLL-U, plain text, CSV series): UTF-8, dropping the byte-order mark (U+FEFF)
#: that Windows editors and Excel's "CSV UTF-8" put first, which would otherwise join the first line's first word.
TEXT_ENCODING = "utf-8-sig"


def data_dir() -> Path:
    """The data directory: ``$ZOO_DATA_DIR`` if set, else ``./data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or "./data")


def resolve_root(root: Optional[str]) -> Path:
    """Resolve a datamodule ``root``.

    ``None`` means :func:`data_dir`. A string may name the data directory as ``$ZOO_DATA_DIR`` (as the shipped
    configs do, e.g. ``$ZOO_DATA_DIR/mnist-5k``); when the variable is unset it stands for ``./data``.
    """
    if root is None:
        return data_dir()
    text = str(root)
    for form in ("${" + DATA_DIR_ENV + "}", "$" + DATA_DIR_ENV):
        text = text.replace(form, str(data_dir()))
    return Path(os.path.expanduser(os.path.expandvars(text)))


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message names the directory, the files and how to get them."""


class CorruptDatasetError(RuntimeError):
    """A dataset file exists but cannot be read (truncated, damaged, not the expected format); the message names
    the file and the fix."""


class DamagedImageError(CorruptDatasetError, ValueError):
    """An image file that cannot be read or decoded, or is too large to decode safely; the message names the file
    and the fix."""


class LabelOutOfRangeError(CorruptDatasetError, ValueError):
    """A dataset file holds a label outside the dataset's classes; the message names the file, the value and the fix."""


def class_folders(folder: Path) -> list[Path]:
    """The class folders of an image-folder split: the folders in ``folder``, sorted, hidden ones
    (``.ipynb_checkpoints``) left out; ``[]`` when ``folder`` does not exist."""
    if not folder.is_dir():
        return []
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def read_utf8(path: Path, fix: str) -> str:
    """The text of ``path`` (:data:`TEXT_ENCODING`); a file that is not UTF-8 raises ``ValueError`` naming it, the
    byte and ``fix``."""
    try:
        return path.read_text(encoding=TEXT_ENCODING)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}). {fix}") from None


def missing_files_error(
    name: str, directory: Path, expected: Sequence[str], how_to_get: str, in_root: bool = True
) -> DatasetNotFoundError:
    """Build the error raised when ``expected`` files of dataset ``name`` are not in ``directory``; an expected
    name with a wildcard (``train/cat/*.jpg``) is there when a file matches it. ``in_root``: ``directory`` comes
    from the datamodule's ``root`` (the message then says how ``root`` is chosen)."""
    missing = [f for f in expected
               if not (any(directory.glob(f)) if any(c in f for c in "*?[") else (directory / f).exists())]
    listing = "\n".join(f"  - {f}" + ("   (missing)" if f in missing else "") for f in expected)
    return DatasetNotFoundError(
        f"{name} not found in {directory.resolve()}.\n"
        f"Expected files:\n{listing}\n"
        f"How to fix: {how_to_get}"
        + (f"\nThe data directory is the datamodule's `root` (default: ${DATA_DIR_ENV}, else ./data)." if in_root
           else "")
    )


def download_failed_error(missing: DatasetNotFoundError, cause: BaseException) -> DatasetNotFoundError:
    """``missing`` (the dataset's not-found error) led by why ``download=True`` failed: its first fix, the download,
    was just tried, so the message says what went wrong with it before the other fixes."""
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return DatasetNotFoundError(f"the download failed ({type(cause).__name__}: {reason}); check the internet "
                                f"connection (or proxy), or get the files another way as below.\n{missing}")

"""The errors the zoo raises on purpose, and how the ``zoo`` command tells them from bugs.

Every deliberate error names the problem and the fix. The ``zoo`` command prints such an error as one message on
stderr and exits with status 2; any other exception is a bug and keeps its traceback. ``ZOO_DEBUG=1`` shows the
traceback of deliberate errors too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

#: the packages whose ``raise`` statements are the zoo's own (their messages are written for users).
ZOO_PACKAGES = tuple(str(Path(__file__).resolve().parent.parent / name) + os.sep for name in ("zoo", "datamodules"))

#: built-in types that the zoo's own code raises for bad arguments, shapes, files and states.
_USER_FACING_TYPES = (ValueError, TypeError, FileNotFoundError, KeyError, RuntimeError)

#: the packages that define Lightning's ``MisconfigurationException`` (the unified and the standalone ones).
_LIGHTNING_PACKAGES = ("lightning", "lightning_fabric", "pytorch_lightning")

#: set by the ``zoo`` command (:func:`name_command_line_options`): :func:`option` then names its flags.
_command_line_options = False
_UNSET = object()
#: the command's argument groups of one fixed class, whose flags have no ``init_args``.
_CLASS_GROUPS = ("trainer", "checkpoint")


def name_command_line_options(enabled: bool = True) -> bool:
    """Make :func:`option` name options as the ``zoo`` command's flags (the command does while it runs); returns
    the previous setting."""
    global _command_line_options
    previous, _command_line_options = _command_line_options, enabled
    return previous


def naming_command_line_options() -> bool:
    """Whether the ``zoo`` command is running (its messages then name its flags and subcommands)."""
    return _command_line_options


def option(section: str, name: str, value: object = _UNSET, owner: Optional[str] = None) -> str:
    """An option of the model, datamodule, Trainer or checkpoint callback (``section``: ``"model"``, ``"data"``,
    ``"trainer"`` or ``"checkpoint"``) as the user passes it, for error messages: ``--data.init_args.batch_size
    32`` under the ``zoo`` command, else the constructor keyword ``batch_size=32`` (``Trainer(max_epochs=3)`` for
    the Trainer's). ``owner``, the class whose constructor takes it, names that class for a Python caller
    (``LeNet(image_size=32)``): needed where a message names a keyword that both the model and the datamodule
    take."""
    if _command_line_options:
        flag = f"--{section}.{name}" if section in _CLASS_GROUPS else f"--{section}.init_args.{name}"
        if value is _UNSET:
            return flag
        return f"{flag} {str(value).lower() if isinstance(value, bool) else value}"
    keyword = name if value is _UNSET else f"{name}={value!r}"
    owner = "Trainer" if section == "trainer" else owner
    return f"{owner}({keyword})" if owner else keyword


class ZooError(Exception):
    """Base of the zoo's own error types (missing or corrupt data, untrusted checkpoints, unknown entries, ...)."""


def is_lightning_misconfiguration(err: BaseException) -> bool:
    """Whether ``err`` is Lightning's ``MisconfigurationException``: a Trainer argument it refuses
    (``--trainer.max_epochs -5``, ``--trainer.devices 0``), its message naming the argument."""
    return any(cls.__name__ == "MisconfigurationException" and cls.__module__.split(".")[0] in _LIGHTNING_PACKAGES
               for cls in type(err).__mro__)


def is_deliberate(err: BaseException) -> bool:
    """Whether ``err`` is an error the zoo raised on purpose rather than a bug.

    True for a :class:`ZooError`, for Lightning's refusal of a Trainer argument
    (:func:`is_lightning_misconfiguration`), and for a ``ValueError``, ``TypeError``, ``FileNotFoundError``,
    ``KeyError`` or ``RuntimeError`` whose innermost frame is a ``raise`` in the zoo's own packages (an argument or
    shape check). The same types raised inside torch, Lightning or any other library are not: they may be bugs of
    the zoo.
    """
    if isinstance(err, ZooError) or is_lightning_misconfiguration(err):
        return True
    if not isinstance(err, _USER_FACING_TYPES):
        return False
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(ZOO_PACKAGES)


def deliberate_cause(err: BaseException) -> Optional[BaseException]:
    """``err`` if it is deliberate, else the first deliberate error of its ``__cause__`` chain, else ``None``.

    jsonargparse reports an error raised in a model's or datamodule's ``__init__`` (a value check) as its own
    ``ValueError`` raised ``from`` it; the zoo's error is the cause. Only explicit causes (``raise ... from``) are
    followed: an error raised while *handling* a deliberate one (its ``__context__``) may be a bug.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if is_deliberate(err):
            return err
        seen.add(id(err))
        err = err.__cause__
    return None


def debug_enabled() -> bool:
    """``ZOO_DEBUG`` set to anything but ``""``/``0``: show tracebacks of deliberate errors as well."""
    return os.environ.get("ZOO_DEBUG", "") not in ("", "0")

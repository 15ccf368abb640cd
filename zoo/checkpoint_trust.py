"""Pickled checkpoints that would run code stay refused unless the user says otherwise.

A Lightning ``.ckpt`` is a ``torch.save`` pickle. ``torch.load(..., weights_only=True)`` (torch's default since
2.6, and what Lightning asks for local files unless told otherwise) unpickles only tensors, containers and
primitive types, plus the globals in torch's allowlist; anything else could run code written by whoever made the
file. The zoo checks a checkpoint *before* loading it, with ``torch.serialization.get_unsafe_globals_in_checkpoint``
(which reads the pickle's opcodes without executing them), and refuses one that needs other globals with its own
message: the file, the globals, and ``--weights_only false`` as the explicit, risky way to accept it. Lightning
loads ``http(s)://`` checkpoints with ``weights_only=False`` unless told; the zoo tells it ``True``.

The ``zoo`` command checks ``--ckpt_path`` through :class:`RefuseUntrustedCkptPath`, a base of its LightningCLI;
``zoo export``, ``zoo evaluate`` and ``zoo predict <ckpt>`` check theirs in :mod:`zoo.hub`. Every reader then loads
the file through :func:`read_checkpoint`, which turns a damaged file into one message naming it and the fix.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from safetensors import safe_open
from torch.serialization import get_unsafe_globals_in_checkpoint

from zoo.errors import ZooError

#: how a ``zoo fit|validate|test|predict`` user accepts a checkpoint that needs other globals.
CLI_ACCEPT = (
    "If you trust where the file comes from, pass --weights_only false to load it anyway: the explicit, risky "
    "choice, since unpickling it runs whatever code the file names."
)


class UntrustedCheckpointError(ZooError, pickle.UnpicklingError):
    """A pickled checkpoint needs globals outside torch's weights-only allowlist; the message names the file,
    the globals and the explicit way to accept it."""


def untrusted_globals(path: Union[str, Path]) -> Optional[list[str]]:
    """The globals ``path`` needs beyond torch's weights-only allowlist, read without unpickling anything.

    ``None`` for a file that is not a zip-format ``torch.save`` file (the legacy format, or a damaged file): for
    those the check is left to ``torch.load(weights_only=True)`` itself, which refuses the same globals.
    """
    try:
        return get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a zip checkpoint: torch.load's own weights-only check still applies
        return None


def refuse_untrusted_checkpoint(path: Union[str, Path], how_to_accept: str = CLI_ACCEPT) -> None:
    """Raise :class:`UntrustedCheckpointError` if loading ``path`` with ``weights_only=True`` would fail on globals."""
    names = untrusted_globals(path)
    if names:
        raise UntrustedCheckpointError(
            f"refusing to load the checkpoint {path}: it is a pickle that needs {', '.join(sorted(names))}, outside "
            f"the tensors and plain types that torch's weights-only loader reads, so loading it could run code "
            f"from the file. {how_to_accept} Otherwise use a checkpoint written by `zoo fit` / Lightning with "
            f"plain hyperparameters, or shipped safetensors weights (`zoo export`, `zoo.load`)."
        )


def read_checkpoint(path: Union[str, Path], how_to_fix: str) -> dict[str, Any]:
    """The checkpoint at ``path`` as ``torch.load(weights_only=True)`` reads it, its tensors memory-mapped (not read);
    a file torch cannot read (truncated, damaged, not a ``torch.save`` file) raises a :class:`ZooError` naming it,
    what is wrong and ``how_to_fix``."""
    if not zipfile.is_zipfile(path):  # what torch.save writes since torch 1.6, and every Lightning checkpoint
        if is_safetensors(path):  # asked only here: a checkpoint's header is read once
            raise ZooError(f"{path} is a safetensors weights file (what `zoo export` writes), not a Lightning "
                           f"checkpoint: start a run from it with --weights {path}, or load an entry's exported "
                           f"weights with ZOO_CHECKPOINT_DIR. {how_to_fix}")
        reason = "not a zip archive, the format of torch.save and Lightning"
    else:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many types
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        else:
            if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
                return checkpoint
            held = (f"a dict of {len(checkpoint)} keys without 'state_dict'" if isinstance(checkpoint, dict) else
                    f"a {type(checkpoint).__name__}")
            raise ZooError(f"{path} is a torch.save file but not a Lightning checkpoint (it holds {held}). A model's "
                           f"plain state_dict is used with --weights once saved as safetensors "
                           f"(safetensors.torch.save_file(state_dict, 'w.safetensors'), then --weights w.safetensors). "
                           f"{how_to_fix}")
    raise ZooError(f"cannot read the checkpoint {path} ({reason}); it is damaged, truncated or another kind of "
                   f"file. {how_to_fix}")


def is_safetensors(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a readable safetensors file (its header parses)."""
    try:
        with safe_open(str(path), framework="pt"):
            return True
    except Exception:  # safetensors raises its own error types for anything else
        return False


#: ``--ckpt_path`` values that Lightning resolves itself (``last`` of ``zoo fit`` is resolved by the zoo first),
#: besides ``registry:...``.
LIGHTNING_CKPT_NAMES = ("best", "last", "hpc", "registry")


def check_subcommand_checkpoint(config: Any, subcommand: str = "fit") -> None:
    """For a LightningCLI subcommand's config (``ckpt_path``, ``weights_only``): refuse a local checkpoint that does
    not exist or is a folder, or an untrusted one unless ``weights_only`` is ``False``, and load a remote one with
    ``weights_only=True`` unless told."""
    ckpt_path, weights_only = config.get("ckpt_path"), config.get("weights_only")
    if not ckpt_path:
        return
    remote = str(ckpt_path).startswith(("http://", "https://"))
    named = str(ckpt_path) in LIGHTNING_CKPT_NAMES or str(ckpt_path).startswith("registry:")
    newest = ("resume the newest" if subcommand == "fit" else f"{subcommand} the newest run's")
    where = (f"Pass the path of a checkpoint (`zoo fit` writes them to <root>/lightning_logs/version_N/checkpoints), "
             f"or `--ckpt_path last` to {newest} last.ckpt under --trainer.default_root_dir.")
    if not (remote or named) and Path(ckpt_path).is_dir():
        folder = Path(ckpt_path)  # where zoo fit writes them, not a walk of the whole tree (a home folder, say)
        inside = sorted((path for pattern in ("*.ckpt", "checkpoints/*.ckpt", "*/checkpoints/*.ckpt",
                                              "lightning_logs/*/checkpoints/*.ckpt") for path in folder.glob(pattern)),
                        key=lambda p: p.stat().st_mtime)
        raise ZooError(f"--ckpt_path {ckpt_path} is a folder, not a checkpoint file" + (
            f"; the newest checkpoint in it is {inside[-1]}." if inside else " and holds no .ckpt file.") + f" {where}")
    if not (remote or named or Path(ckpt_path).exists()):
        raise ZooError(f"--ckpt_path {ckpt_path}: no such file. {where}")
    if weights_only is False:
        return
    if remote:
        config["weights_only"] = True
    elif Path(ckpt_path).is_file():
        refuse_untrusted_checkpoint(ckpt_path)


class RefuseUntrustedCkptPath:
    """A base for a ``LightningCLI`` subclass (before :class:`zoo.lightning_compat.CLIHooks` in its bases):
    ``--ckpt_path`` is checked by :func:`check_subcommand_checkpoint` before anything loads it.

    LightningCLI reads the hyperparameters of ``--ckpt_path`` after parsing, before any public hook, with
    ``torch.load(weights_only=True)``, so the check runs just before that read (``before_reading_ckpt_path``). With
    ``--weights_only false``, the user's explicit choice, that read is skipped for a checkpoint that needs other
    globals (it would fail): the model is then configured by the command line alone, and ``Trainer.<subcommand>``
    loads the file with ``weights_only=False``.
    """

    def before_reading_ckpt_path(self) -> bool:
        subcommand = self.config.get("subcommand")
        if subcommand:
            config = self.config[subcommand]
            check_subcommand_checkpoint(config, subcommand)
            if config.get("weights_only") is False and untrusted_globals(config.get("ckpt_path") or ""):
                return False
        return super().before_reading_ckpt_path()

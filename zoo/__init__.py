"""lightning-zoo: models of well-known papers and of a classic PyTorch textbook, as tested Lightning code.

The shipped weights from Python::

    import zoo
    zoo.list_models("*mnist*", shipped=True)   # entry names
    model = zoo.load("lenet_mnist")             # eval mode, sha256-checked
    x = zoo.transforms("lenet_mnist")(image)    # a uint8 image tensor (C, H, W) -> the model's input
    zoo.class_names("lenet_mnist")[model(x[None]).argmax()]
"""

from typing import Any, Optional

__version__ = "0.2.0"


def load(entry: str, map_location: str = "cpu") -> Any:
    """Return the shipped model of a zoo entry in eval mode, after checking its sha256 (see :mod:`zoo.hub`)."""
    from zoo.hub import load as _load

    return _load(entry, map_location=map_location)


def list_models(pattern: str = "*", shipped: Optional[bool] = None) -> list:
    """Entry names matching the shell-style ``pattern``; ``shipped=True``/``False`` keeps those with/without
    weights."""
    from zoo.registry import list_models as _list_models

    return _list_models(pattern, shipped=shipped)


def transforms(entry: str) -> Any:
    """The torchvision (v2) transform from a uint8 image tensor ``(C, H, W)`` to the input of an entry's model."""
    from zoo.hub import transforms as _transforms

    return _transforms(entry)


def class_names(entry: str) -> list:
    """The names of an entry's output classes, in label order."""
    from zoo.hub import class_names as _class_names

    return _class_names(entry)


__all__ = ["__version__", "class_names", "list_models", "load", "transforms"]

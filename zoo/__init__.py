"""lightning-zoo: models of well-known papers and of a classic PyTorch textbook, as tested Lightning code.

The shipped weights from Python::

    import zoo
    zoo.list_models("*mnist*", shipped=True)   # entry names
    model = zoo.load("lenet_mnist")             # eval mode, sha256-checked
    x = zoo.transforms("lenet_mnist")(image)    # a uint8 image tensor (C, H, W) -> the model's input
    zoo.class_names("lenet_mnist")[model(x[None]).argmax()]

``import zoo`` stays light (the ``zoo`` command starts without torch): these four names are :func:`zoo.hub.load`,
:func:`zoo.hub.transforms`, :func:`zoo.hub.class_names` and :func:`zoo.registry.list_models`, whose modules are
imported on first use (PEP 562), as are the public subpackages and modules of :data:`PUBLIC_MODULES`
(``zoo.models.LeNet()`` after a plain ``import zoo``).
"""

import importlib
from typing import Any

__version__ = "0.2.0"

#: the package's public functions and the module that defines each.
PUBLIC_FUNCTIONS = {"load": "zoo.hub", "transforms": "zoo.hub", "class_names": "zoo.hub",
                    "list_models": "zoo.registry"}

#: the subpackages and modules that ``zoo.<name>`` imports on first access.
PUBLIC_MODULES = ("models", "layers", "callbacks", "hub", "registry", "preprocessing", "evaluation", "export",
                  "errors")


def __getattr__(name: str) -> Any:
    if name in PUBLIC_FUNCTIONS:
        return getattr(importlib.import_module(PUBLIC_FUNCTIONS[name]), name)
    if name in PUBLIC_MODULES:
        return importlib.import_module(f"zoo.{name}")  # which also binds it here: later accesses skip this
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *PUBLIC_FUNCTIONS, *PUBLIC_MODULES})


__all__ = ["__version__", "class_names", "list_models", "load", "transforms"]

"""lightning-zoo: models of well-known papers and of a classic PyTorch textbook, as tested Lightning code."""

__version__ = "0.1.0"


def load(entry: str, map_location: str = "cpu"):
    """Return the shipped model of a zoo entry in eval mode, after checking its sha256 (see :mod:`zoo.hub`)."""
    from zoo.hub import load as _load

    return _load(entry, map_location=map_location)


__all__ = ["load", "__version__"]

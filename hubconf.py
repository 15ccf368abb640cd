"""torch.hub entry points: ``torch.hub.load("<this repository>", "<entry>")`` returns an entry's shipped model.

Every zoo entry that ships weights is an entry point; the model comes back in eval mode after its sha256 was
checked (``zoo.load``); its docstring is the first line of the entry's config.
"""

from functools import partial as _partial

from zoo import registry as _registry
from zoo.hub import load as _load

dependencies = ["torch", "torchvision", "lightning", "torchmetrics", "safetensors", "jsonargparse", "yaml"]


def _load_entry(entry: str, map_location: str = "cpu", **kwargs):
    if kwargs:
        raise TypeError(f"torch.hub.load(..., {entry!r}) takes only map_location, got {sorted(kwargs)}")
    return _load(entry, map_location=map_location)


def _entry_points() -> dict:
    points = {}
    for name in _registry.list_models(shipped=True):
        point = _partial(_load_entry, name)
        point.__doc__ = f"{_registry.get(name).description}. Shipped weights of the zoo entry {name!r} (eval mode)."
        points[name] = point
    return points


globals().update(_entry_points())

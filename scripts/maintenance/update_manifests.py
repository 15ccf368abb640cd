"""Add what ``zoo export`` now records to manifests written before it did: the preprocessing, the class names, a
text entry's vocabularies, the parameter count, the file size, the stored dtype and where the metrics were
measured (schema 2).

Nothing is re-measured: the weights are loaded (sha256-checked) to count their parameters, the datamodule class of
the manifest is built from its stored arguments for its ``input_spec()`` and ``class_names`` (no data is read but
a text entry's training split, under ``ZOO_DATA_DIR``, which its vocabularies are built from).
Each manifest is rewritten atomically. Run: ``python -m scripts.maintenance.update_manifests [ENTRY ...]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import lightning as L

from zoo import export, hub, registry
from zoo.manifest import Manifest


def update(entry_name: str) -> Manifest:
    entry = registry.get(entry_name)
    manifest = entry.manifest()
    if manifest is None:
        raise SystemExit(f"{entry_name} ships no weights")
    model = hub.load(entry_name)
    dm_cls = hub.import_trusted(manifest.datamodule_class, L.LightningDataModule)
    datamodule = dm_cls(**manifest.datamodule)
    if hasattr(dm_cls, "vocabularies"):  # a text entry: the vocabularies of its training split, as when it trained
        datamodule.setup("fit")
        sizes = {"num_words": len(datamodule.vocabularies["words"]), "num_chars": len(datamodule.vocabularies["chars"])}
        if any(manifest.hparams.get(name) != size for name, size in sizes.items()):
            raise SystemExit(f"{entry_name}: the data under ZOO_DATA_DIR gives vocabularies of {sizes}, the weights "
                             f"were trained with {manifest.hparams}: not the data it trained on")
    path = Path(entry.manifest_path).parent / manifest.weights
    tensors = hub.load_file(str(path))
    stored = set(tensors)
    dtypes = {str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()}
    described = export.describe_weights(model, datamodule, path, dtype="/".join(sorted(dtypes)) or "float32",
                                     stored=stored)
    data = manifest.data
    described["measured_on"].update(split=data.get("test_split", "test"), size=data.get("test_size"),
                                    dataset=data.get("dataset"))
    manifest = dataclasses.replace(manifest, **described,
                                   trained={**manifest.trained, "device": manifest.trained.get("device", "cpu")})
    partial = entry.manifest_path.with_name(f".{entry.manifest_path.name}.partial")
    partial.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    os.replace(partial, entry.manifest_path)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("entries", nargs="*", help="entries to update (default: every shipped entry)")
    names = parser.parse_args().entries or registry.list_models(shipped=True)
    for name in names:
        manifest = update(name)
        print(f"{name}: {manifest.parameters:,} parameters, {manifest.file_size:,} bytes, "
              f"{'classes ' + str(len(manifest.classes)) if manifest.classes is not None else 'no classes'}, "
              f"{'preprocessing' if manifest.preprocessing is not None else 'no preprocessing'}"
              f"{', vocabularies' if manifest.vocabularies is not None else ''}")


if __name__ == "__main__":
    main()

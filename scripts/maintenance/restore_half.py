"""Re-store shipped weights in float16 or bfloat16, with every metric re-measured from the stored file.

Large entries (over 4 MB) may ship in half precision when their figures hold. For each entry this script stores
the floating-point tensors of its shipped weights in ``--dtype``, rebuilds the model from the new file as
``zoo.load`` does, re-measures the manifest's test metrics (and the generative models' sample quality, the sparse
and dense nets' noise score) on the real test set, and prints them beside the float32 figures. Only when every
accuracy-like metric moved by at most ``--tolerance`` (absolute) are the weights and the manifest replaced (both
written to temporary names first); the manifest's metrics are then the ones measured from the stored file and its notes say what was done.

``--remeasure REASON`` keeps each entry's stored dtype and only re-measures and rewrites its metrics (no guard),
with REASON in the notes: for when something the metrics depend on changed, such as the shipped classifier whose
features the generative models' Fréchet distances and class shares are measured in.

Run (the datasets under ``ZOO_DATA_DIR``)::

    python -m scripts.maintenance.restore_half cnn_mnist airbench_cifar10 --dtype float16
    python -m scripts.maintenance.restore_half vae_mnist --remeasure "lenet_mnist, the FD classifier, was re-shipped"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from scripts.reproductions import noise_robustness
from zoo import evaluation, export, hub, registry

#: metrics where a higher value is better and the tolerance applies (losses and distances are reported only).
GUARDED = ("acc", "label_acc")


def restore(entry_name: str, dtype: str, tolerance: float, dry_run: bool, remeasure: str = "") -> bool:
    entry = registry.get(entry_name)
    manifest = entry.manifest()
    if manifest is None:
        raise SystemExit(f"{entry_name} ships no weights")
    if remeasure:
        dtype, tolerance = manifest.stored_dtype, float("inf")
    elif manifest.stored_dtype == dtype:
        print(f"{entry_name}: already stored in {dtype}")
        return True
    shipped = hub.load(entry_name)
    state = export.stored_state(shipped, dtype)
    folder = entry.manifest_path.parent
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        stored = Path(tmp) / manifest.weights
        save_file(state, str(stored), metadata={"entry": entry_name, "model_class": manifest.model_class})
        stored.chmod(0o644)
        model = type(shipped)(**hub.hparams_to_build(manifest))
        hub.load_state(model, stored, held=manifest.weights_hold_only)
        model.eval()
        datamodule = hub.build_datamodule(entry_name)
        measured = evaluation.model_metrics(model, datamodule)
        if "noise_score" in manifest.metrics:  # the sparse/dense nets: the noise score is re-measured too
            subject = noise_robustness.from_model(entry_name, model, datamodule)
            rows = noise_robustness.noise_curves([subject], protocols=("paper",))
            measured.update(noise_robustness.manifest_metrics(rows, entry_name))
        worst = 0.0
        for key in sorted(manifest.metrics):
            before, after = manifest.metrics[key], measured.get(key)
            mark = ""
            if after is not None and key.rsplit("/", 1)[-1].startswith(GUARDED):
                worst = max(worst, before - after)
                mark = "  <- guarded"
            print(f"{entry_name:<28} {key:<32} float32 {before:>12.5f}   {dtype} {after if after is not None else '-':>12}"
                  f"{mark}")
        if worst > tolerance:
            print(f"{entry_name}: kept in float32 (a guarded metric fell by {worst:.5f} > {tolerance})")
            return False
        size_before = manifest.file_size
        done = (f"Metrics re-measured by scripts/maintenance/restore_half.py --remeasure: {remeasure}." if remeasure
                else f"Re-stored in {dtype} by scripts/maintenance/restore_half.py ({size_before:,} -> "
                f"{stored.stat().st_size:,} bytes); the metrics are re-measured from the {dtype} file.")
        described = export.describe_weights(model, datamodule, stored, dtype, set(state))
        updated = dataclasses.replace(manifest, **{**described, "measured_on": manifest.measured_on},
                                      metrics={**manifest.metrics, **measured}, sha256=hub.sha256(stored),
                                      notes=f"{manifest.notes} {done}".strip())
        print(f"{entry_name}: {size_before:,} -> {stored.stat().st_size:,} bytes")
        if dry_run:
            return True
        partial = Path(tmp) / "manifest.json"
        partial.write_text(json.dumps(updated.to_dict(), indent=2) + "\n")
        os.replace(stored, folder / manifest.weights)
        os.replace(partial, entry.manifest_path)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entries", nargs="+")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--tolerance", type=float, default=0.001,
                        help="the largest fall of an accuracy-like metric accepted (absolute, default 0.001)")
    parser.add_argument("--dry_run", action="store_true", help="measure and print, replace nothing")
    parser.add_argument("--remeasure", default="", metavar="REASON",
                        help="keep the stored dtype; re-measure and rewrite the metrics, giving REASON in the notes")
    args = parser.parse_args()
    results = [restore(name, args.dtype, args.tolerance, args.dry_run, args.remeasure) for name in args.entries]
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()

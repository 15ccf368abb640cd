"""A picture of a video forecaster's test forecasts (ConvLSTM on Moving MNIST): per sequence, a row of input frames,
a row of the true future frames and a row of the forecast frames.

    python -m scripts.figures.forecast_strip convlstm_moving_mnist --out docs/convlstm_moving_mnist.png
    python -m scripts.figures.forecast_strip --ckpt_path runs/.../last.ckpt --out strip.png

The entry's shipped weights are loaded (``zoo.load``) with the datamodule of its manifest, or a ``zoo fit``
checkpoint with the datamodule it was trained on. The sequences are the first ``--sequences`` of the test split
(generated from the test digits under ``ZOO_DATA_DIR``); the picture is the one ``FrameStripCallback`` writes
during training.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import torch
from torchvision.utils import save_image

import zoo
from zoo import hub
from zoo.callbacks import FrameStripCallback


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("entry", nargs="?", help="zoo entry with shipped weights, e.g. convlstm_moving_mnist")
    source.add_argument("--ckpt_path", help="a `zoo fit` checkpoint of a forecaster instead of an entry")
    parser.add_argument("--sequences", type=int, default=3, help="test sequences shown (3 rows each)")
    parser.add_argument("--out", default="forecasts.png", help="PNG file to write")
    args = parser.parse_args(argv)

    if args.ckpt_path:
        model, datamodule = hub.load_run(args.ckpt_path)
    else:
        model, datamodule = zoo.load(args.entry), hub.build_datamodule(args.entry)
    if not hasattr(model, "predict_frames"):
        raise SystemExit(f"{type(model).__name__} does not forecast frames (it has no predict_frames)")
    datamodule.setup("test")
    pairs = [datamodule.test_set[i] for i in range(args.sequences)]
    inputs, future = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    image = FrameStripCallback(num_sequences=args.sequences).strip(model.eval(), inputs, future)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_image(image, args.out)
    print(f"wrote {args.out}: {args.sequences} test sequences, rows: inputs, truth, forecast")


if __name__ == "__main__":
    main()

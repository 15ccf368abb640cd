"""Plot a shipped airline forecaster's one-step forecasts against the real series (PNG).

    python -m scripts.figures.plot_airline --entry lstm_airline --out airline.png

Every month with a full window gets the forecast made from the ``look_back`` real months before it; the
validation and test parts are shaded, and the legend gives the test RMSE beside the seasonal-naive forecast's.
"""

from __future__ import annotations

import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import zoo  # noqa: E402
from zoo import hub  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entry", default="lstm_airline")
    parser.add_argument("--out", default="airline.png")
    args = parser.parse_args()

    model = zoo.load(args.entry)
    datamodule = hub.build_datamodule(args.entry)
    windows, _ = datamodule.windows("all")
    with torch.no_grad():
        forecast = model.predict_step(windows, 0)
    first, end = datamodule.target_range("all")
    months = torch.arange(len(datamodule.series))
    test_first, _ = datamodule.target_range("test")
    test_rmse = math.sqrt(float(((forecast[test_first - first:] - datamodule.series[test_first:]) ** 2).mean()))
    seasonal = datamodule.baselines("test")["rmse_seasonal_naive"]

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.axvspan(datamodule.val_start, datamodule.train_end, color="tab:orange", alpha=0.12, label="validation")
    ax.axvspan(datamodule.train_end, len(months) - 1, color="tab:red", alpha=0.08, label="test")
    ax.plot(months, datamodule.series, color="black", label="real")
    ax.plot(months[first:end], forecast, color="tab:blue",
            label=f"LSTM forecast (test RMSE {test_rmse:.1f}; seasonal naive {seasonal:.1f})")
    ticks = list(range(0, len(months), 12))
    ax.set_xticks(ticks, [datamodule.months[i][:4] for i in ticks])
    ax.set_ylabel("passengers (thousands)")
    ax.set_title(f"{args.entry}: one-step forecasts of the airline passengers series")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}: test RMSE {test_rmse:.2f} thousand passengers (seasonal naive {seasonal:.2f})")


if __name__ == "__main__":
    main()

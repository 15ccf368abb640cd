"""The airline passengers series (Box & Jenkins, 1976, series G) as windows of months for a one-step forecaster.

144 monthly totals of international airline passengers in thousands, 1949-01 .. 1960-12, shipped inside the
package (``datamodules/embedded/airline-passengers.csv``). As in chapter 5 of "深度学习入门之PyTorch" (Liao
Xingyu, 2017) the values are divided by ``max - min`` and a window of ``look_back`` months predicts the next
month. The split is chronological: the first 70 % of the months are the training part, whose last
``val_months`` serve as validation targets, and the remaining months are the test targets (a test window may
read months of the training part: that is known history). Unlike the book, ``max - min`` is taken over the
training part only, so nothing of the test months leaks into the scaling.
"""

from __future__ import annotations

import csv
import io
import math
from importlib import resources
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from datamodules._batched import TensorBatchDataset, check_batch_size, tensor_loader
from datamodules._paths import read_utf8, resolve_root
from datamodules._splits import SplitLoaders

EMBEDDED_CSV = "airline-passengers.csv"
SEASON = 12  # months in a year: the seasonal-naive forecast repeats the same month of the previous year


def read_series_csv(text: str, source: str = "<csv>",
                    otherwise: str = " or pass csv_path=None for the embedded series") -> tuple[list[str], Tensor]:
    """Parse a two-column CSV with a header (``Month,Passengers``) into month labels and a float tensor ``(T,)``.

    The first column holds the labels, the last the values (finite numbers); blank lines are skipped. A bad file
    raises ``ValueError`` naming the source, the row and the fix, ending with ``otherwise``.
    """
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise ValueError(f"{source}: expected a header line and monthly rows (Month,Passengers), got {len(rows)} rows; "
                         f"fix the file{otherwise}")
    months, values = [], []
    for line_number, row in enumerate(rows[1:], start=2):
        try:
            value = float(row[-1])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(
                f"{source}, row {line_number}: expected a finite number in the last column, got "
                f"{row[-1]!r}; fix that row (or remove it){otherwise}"
            )
        values.append(value)
        months.append(row[0].strip())
    return months, torch.tensor(values, dtype=torch.float32)


def make_windows(series: Tensor, look_back: int, first_target: int, end_target: int) -> tuple[Tensor, Tensor]:
    """Windows ``(N, look_back, 1)`` of ``series`` and their next values ``(N,)`` for targets in ``[first, end)``.

    Target month ``t`` gets the window ``series[t - look_back : t]``; targets before ``look_back`` have no full
    window and are skipped (the book's ``create_dataset``).
    """
    if look_back < 1:
        raise ValueError(f"look_back must be at least 1 month, got {look_back}")
    targets = torch.arange(max(first_target, look_back), end_target)
    offsets = torch.arange(-look_back, 0)
    windows = series[targets.unsqueeze(1) + offsets]
    return windows.unsqueeze(-1), series[targets]


class AirlinePassengersDataModule(SplitLoaders):
    """Monthly airline passengers as ``(window, target)`` batches.

    ``window`` is ``(N, look_back, 1)``, ``target`` ``(N,)``.

    Values are scaled (divided by :attr:`scale`); :meth:`inverse_scale` turns them back into thousands.

    Args:
        csv_path: a ``Month,Passengers`` CSV (``$ZOO_DATA_DIR`` may appear in it); default: the embedded series.
        look_back: months in a window (the book: 2).
        train_fraction: leading fraction of the months that forms the training part (the book: 0.7).
        val_months: last months of the training part used as validation targets (0: no validation split).
        batch_size: batch size of every loader (the default holds the whole training part, as the book trains).
        seed: seed (mixed with ``--seed_everything``) of the training windows' order, a function of the epoch.
    """

    def __init__(
        self,
        csv_path: Optional[str] = None,
        look_back: int = 2,
        train_fraction: float = 0.7,
        val_months: int = 12,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size)
        if not 0.0 < train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
        if look_back < 1:
            raise ValueError(f"look_back must be at least 1 month, got {look_back}")
        self.save_hyperparameters()
        self.months, self.series = self._read()
        hp = self.hparams
        self.train_end = int(len(self.series) * hp.train_fraction)  # first test target month
        self.val_start = self.train_end - hp.val_months
        if self.val_start - look_back < 1 or self.train_end >= len(self.series):
            raise ValueError(
                f"{len(self.series)} months cannot be split into training windows of look_back={look_back}, "
                f"{val_months} validation months and a test part with train_fraction={train_fraction}; "
                f"use a longer series or smaller look_back/val_months"
            )
        training_part = self.series[: self.train_end]
        self.scale = float(training_part.max() - training_part.min())
        if self.scale <= 0:
            raise ValueError("the training part of the series is constant; max - min must be positive to scale it")
        self.scaled = self.series / self.scale
        self.datasets: dict[str, TensorBatchDataset] = {}

    def _read(self) -> tuple[list[str], Tensor]:
        path = self.hparams.csv_path
        if path is None:
            text = (resources.files("datamodules") / "embedded" / EMBEDDED_CSV).read_text(encoding="utf-8")
            return read_series_csv(text, f"embedded {EMBEDDED_CSV}")
        resolved = resolve_root(path)
        if not Path(resolved).is_file():
            raise FileNotFoundError(
                f"airline CSV {resolved} not found; pass csv_path=None for the embedded series or the path of a "
                f"Month,Passengers CSV"
            )
        text = read_utf8(Path(resolved), "Save it as UTF-8 or pass csv_path=None for the embedded series.")
        return read_series_csv(text, str(resolved))

    # ------------------------------------------------------------------ splits
    def target_range(self, split: str) -> tuple[int, int]:
        """``[first, end)`` target month indices of ``split`` (``train``, ``val``, ``test`` or ``all``)."""
        look_back = self.hparams.look_back
        ranges = {
            "train": (look_back, self.val_start),
            "val": (self.val_start, self.train_end),
            "test": (self.train_end, len(self.series)),
            "all": (look_back, len(self.series)),
        }
        if split not in ranges:
            raise ValueError(f"split must be one of {sorted(ranges)}, got {split!r}")
        return ranges[split]

    def windows(self, split: str) -> tuple[Tensor, Tensor]:
        """Scaled windows ``(N, look_back, 1)`` and targets ``(N,)`` of ``split``."""
        return make_windows(self.scaled, self.hparams.look_back, *self.target_range(split))

    def inverse_scale(self, values: Tensor) -> Tensor:
        """Scaled values back to thousands of passengers."""
        return values * self.scale

    def setup(self, stage: Optional[str] = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = TensorBatchDataset(*self.windows(split))

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run for the {split} split")
        return tensor_loader(self.datasets[split], self.hparams.batch_size, shuffle, self.hparams.seed)

    # ------------------------------------------------------------------ baselines and facts
    def baselines(self, split: str) -> dict[str, float]:
        """RMSE in thousands of passengers of two naive forecasts on the targets of ``split``.

        ``rmse_seasonal_naive``: the same month one year earlier; ``rmse_last_value``: the previous month.
        """
        first, end = self.target_range(split)
        targets = torch.arange(max(first, SEASON), end)
        truth = self.series[targets]

        def rmse(forecast: Tensor) -> float:
            return math.sqrt(float(((forecast - truth) ** 2).mean()))

        return {
            "rmse_seasonal_naive": rmse(self.series[targets - SEASON]),
            "rmse_last_value": rmse(self.series[targets - 1]),
        }

    def describe(self) -> dict:
        """Dataset facts for a checkpoint manifest."""
        facts: dict = {
            "dataset": "Airline passengers (Box & Jenkins series G, thousands, monthly)",
            "months": len(self.series),
            "scale": self.scale,
        }
        for split in ("train", "val", "test"):
            first, end = self.target_range(split)
            facts[f"{split}_size"] = end - first
            facts[f"{split}_target_months"] = f"{self.months[first]}..{self.months[end - 1]}"
        return facts

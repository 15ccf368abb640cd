"""A callback for the DDP test of tests/test_cli.py, importable by the `zoo fit` subprocess (PYTHONPATH=tests)."""

from __future__ import annotations

import atexit

import lightning as L
import torch


def report_process_group() -> None:
    print(f"process group alive at exit: {torch.distributed.is_initialized()}", flush=True)


class ReportProcessGroupAtExit(L.Callback):
    """Prints, at interpreter exit of every rank, whether the distributed process group was left alive."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert torch.distributed.is_initialized(), "no process group: the run is not distributed"
        atexit.register(report_process_group)

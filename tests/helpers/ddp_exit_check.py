"""Callbacks for the DDP tests (tests/test_cli.py, tests/test_multinode.py), importable by the `zoo fit` subprocesses
run from the repository root (``--trainer.callbacks+=tests.helpers.ddp_exit_check.<Callback>``)."""

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


class ReportDistributedSetup(L.Callback):
    """Prints, on every rank at the start of fit, who launched it and where the rank sits in the process group.

    The line reads ``distributed: <ClusterEnvironment> world_size=W global_rank=R node_rank=N local_rank=L``,
    with ``W`` from ``torch.distributed`` itself, so a test can tell a real multi-process group from a plan.
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        environment = type(trainer.strategy.cluster_environment).__name__
        print(
            f"distributed: {environment} world_size={torch.distributed.get_world_size()} "
            f"global_rank={trainer.global_rank} node_rank={trainer.node_rank} local_rank={trainer.local_rank}",
            flush=True,
        )

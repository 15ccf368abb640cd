"""Multi-node training through the launchers that exist (issue 21 item 4; README "Several machines").

Two "nodes" on 127.0.0.1, one process each, run one real ``zoo fit`` of the quick-start entry together over
gloo, the zoo adding no launcher: Lightning forms the process group from the launcher's environment.

- ``torchrun`` (PyTorch's launcher): two invocations, ``--nnodes 2 --node_rank 0|1``, rendezvous at a free port;
  Lightning's ``TorchElasticEnvironment``.
- SLURM: what ``srun`` puts in each task's environment (``SLURM_PROCID``, ``SLURM_NODEID``, ...) given to two
  ``zoo fit`` processes, as ``srun`` would start them on two nodes; Lightning's ``SLURMEnvironment``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO

#: the quick-start entry: 1,000 embedded training images, 20 % of them held out for validation, batches of 32
TRAIN_IMAGES, BATCH_SIZE = 800, 32

FIT_ARGS = (
    "fit", "-c", "lenet_mnist_mini", "--trainer.num_nodes", "2", "--trainer.devices", "1",
    "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--trainer.callbacks+=tests.helpers.ddp_exit_check.ReportDistributedSetup",
    "--trainer.callbacks+=tests.helpers.ddp_exit_check.ReportProcessGroupAtExit",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_node(command: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
    """One node's process, its output captured; the environment stripped of any launcher's own variables."""
    launcher_vars = ("SLURM_", "TORCHELASTIC_", "MASTER_", "WORLD_SIZE", "RANK", "LOCAL_RANK", "GROUP_RANK")
    env = {key: value for key, value in os.environ.items() if not key.startswith(launcher_vars)}
    env.update(PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", **extra_env)
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: a hung node is killed with its worker


def run_nodes(nodes: list[subprocess.Popen], timeout: int = 300) -> list[str]:
    """The outputs of the nodes after asserting that each exited with 0; kills them all on a hang."""
    outputs = []
    try:
        for node in nodes:
            outputs.append(node.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2-node job did not finish in {timeout} s (a node that never joined the rendezvous?)")
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
    for rank, (node, output) in enumerate(zip(nodes, outputs)):
        assert node.returncode == 0, f"node {rank} exit {node.returncode}:\n{output[-3000:]}"
    return outputs


def check_one_run_of_two_ranks(outputs: list[str], root: Path, environment: str, version: str = "version_0") -> None:
    for rank, output in enumerate(outputs):
        line = f"distributed: {environment} world_size=2 global_rank={rank} node_rank={rank} local_rank=0"
        assert line in output, output[-3000:]
        # a gloo group left to interpreter shutdown can abort a finished run: every rank destroys it
        assert "process group alive at exit: False" in output, output[-3000:]
    # rank 0 alone writes the run: one run directory, one results.json, one best and one last checkpoint
    assert [p.relative_to(root).as_posix() for p in root.rglob("results.json")] == [
        f"lightning_logs/{version}/results.json"
    ]
    assert sum(output.count("results: ") for output in outputs) == 1
    checkpoints = sorted(p.name for p in root.rglob("*.ckpt"))
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints, checkpoints
    # the two ranks split the training set: each takes half of it per epoch
    steps = math.ceil(TRAIN_IMAGES / 2 / BATCH_SIZE)
    results = json.loads(next(root.rglob("results.json")).read_text())
    assert (results["epochs"], results["global_step"]) == (1, steps)
    assert "test/acc" in results["test"]
    state = torch.load(next(root.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert state["global_step"] == steps


def test_two_nodes_one_process_each_through_torchrun(tmp_path):
    port = free_port()
    nodes = [
        start_node([
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--node_rank", str(node_rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
            "-m", "zoo", *FIT_ARGS, "--trainer.default_root_dir", str(tmp_path),
        ], {})
        for node_rank in (0, 1)
    ]
    check_one_run_of_two_ranks(run_nodes(nodes), tmp_path, "TorchElasticEnvironment")


def test_two_nodes_under_the_variables_srun_sets(tmp_path):
    """`srun zoo fit ...` with --nodes=2 --ntasks-per-node=1: each task gets these variables from SLURM."""
    job = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "zoo-multinode", "SLURM_NTASKS": "2", "SLURM_NNODES": "2",
           "SLURM_NTASKS_PER_NODE": "1", "SLURM_NODELIST": "127.0.0.1", "MASTER_PORT": str(free_port())}
    nodes = [
        start_node([sys.executable, "-m", "zoo", *FIT_ARGS, "--trainer.default_root_dir", str(tmp_path)],
                   {**job, "SLURM_PROCID": str(rank), "SLURM_NODEID": str(rank), "SLURM_LOCALID": "0"})
        for rank in (0, 1)
    ]
    # Lightning's loggers name the run after the SLURM job: version_<SLURM_JOB_ID>
    check_one_run_of_two_ranks(run_nodes(nodes), tmp_path, "SLURMEnvironment", version="version_4242")

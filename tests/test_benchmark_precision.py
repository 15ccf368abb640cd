"""scripts/benchmarks/benchmark_precision.py times what Lightning's bf16-mixed does on the CPU: autocast forward,
float32 loss and weights."""

from __future__ import annotations

import copy
import subprocess
import sys

import torch

from scripts.benchmarks import benchmark_precision as bench
from tests.helpers import REPO
from zoo.models import LeNet


def test_bf16_step_runs_the_forward_in_bfloat16_and_keeps_float32_weights():
    model = LeNet()
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    before = copy.deepcopy(model.state_dict())
    for bf16 in (False, True):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        bench.training_step(model, images, labels, optimizer, bf16=bf16)()
    assert seen == [torch.float32, torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_script_prints_both_precisions_in_both_memory_formats_against_float32():
    proc = subprocess.run([sys.executable, "-m", "scripts.benchmarks.benchmark_precision", "--entry", "lenet_mnist",
                           "--batch-size", "8", "--rounds", "1", "--calls", "1", "--memory-formats"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "s per training step" in line]
    assert [line.split(":")[0].strip() for line in lines] == [
        "32-true contiguous", "bf16-mixed contiguous", "32-true channels_last", "bf16-mixed channels_last"]
    assert lines[0].endswith("1.00x the speed of 32-true contiguous")

"""Every command in the README's code blocks runs as written, in a fresh folder, with its placeholders filled by small
local files: your digit images, a photo folder, the checkpoints of the runs the README's own commands made.

Commands that re-measure on the real test sets (``zoo evaluate ENTRY``, ``zoo test -c ENTRY``) need the real
datasets and run when ``ZOO_DATA_DIR`` names them (CI); the install and test commands are what CI itself runs.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.io import write_png

from tests.helpers import REPO, ok, real_data_dir, run_zoo

README = REPO / "README.md"
#: README commands that CI runs itself (install, tests) or that are shell setup, not zoo commands.
RUN_BY_CI = ("pip install", "python -m pytest", "python3 -m venv")


def readme_code_lines() -> list[str]:
    """The README's code-block lines, continuation lines joined, comments dropped."""
    lines, fenced, pending = [], None, ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = None if fenced is not None else line[3:].strip()
            continue
        if fenced not in ("bash", "python"):
            continue
        code = pending + line.strip()
        if code.endswith("\\"):
            pending = code[:-1] + " "
            continue
        pending = ""
        lines.append(code)
    return lines


def zoo_commands() -> list[list[str]]:
    return [shlex.split(line, comments=True) for line in readme_code_lines() if line.startswith("zoo ")]


def python_block() -> str:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def digits(folder: Path) -> Path:
    """Eight 28x28 light-on-dark 'digits' (bars) as PNG files."""
    folder.mkdir(parents=True)
    for i in range(8):
        image = torch.zeros(1, 28, 28, dtype=torch.uint8)
        image[:, 4:24, 10 + i % 4: 14 + i % 4] = 255
        write_png(image, str(folder / f"{i}.png"))
    return folder


def photos(root: Path) -> Path:
    """Two classes of 40x48 colour photos in photos/train/<class>/."""
    generator = torch.Generator().manual_seed(0)
    for label, name in enumerate(("blue", "red")):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(12):
            image = torch.randint(0, 90, (3, 40, 48), generator=generator, dtype=torch.uint8)
            image[2 - 2 * label] += 150
            write_png(image, str(folder / f"{i}.png"))
    return root


def backbone_file(folder: Path) -> Path:
    """A MobileNet V2 state dict (random weights), where the README's command downloads ImageNet's."""
    path = folder / "mobilenet_v2.pth"
    if not path.exists():
        torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    return path


def newest(folder: Path, pattern: str) -> str:
    return str(max(folder.rglob(pattern), key=lambda p: p.stat().st_mtime))


def needs_real_data(tokens: list[str]) -> bool:
    entry_test = tokens[1] in ("test", "validate") and "--weights" in tokens
    return (tokens[1] == "evaluate" and "--ckpt_path" not in tokens) or entry_test


def test_the_readme_has_the_commands_this_test_runs():
    commands = zoo_commands()
    assert len(commands) >= 12 and ["zoo", "fit", "-c", "lenet_mnist_mini"] in commands
    other = [line for line in readme_code_lines()
             if not line.startswith(("zoo ", "#", *RUN_BY_CI)) and line and "python" not in line]
    assert not [line for line in other if not re.match(r"^[\w(). ,=\[\]\"'<>:#-]+$", line)], other


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    env = {"ZOO_CHECKPOINT_DIR": str(tmp_path / "exported")}  # the shipped files the commands read, copied
    digits(tmp_path / "my_digits")
    photos(tmp_path / "photos")
    (tmp_path / "my_text.txt").write_text("I love this zoo .\nThe weights ship with it\n", encoding="utf-8")
    months = [f"{2000 + i // 12}-{i % 12 + 1:02d},{300 + 2 * i + 40 * (i % 12 in (5, 6, 7))}" for i in range(48)]
    (tmp_path / "my_series.csv").write_text("Month,Value\n" + "\n".join(months) + "\n")
    (tmp_path / "my_frames").mkdir()
    for number in range(12):
        frame = torch.zeros(1, 64, 64, dtype=torch.uint8)
        frame[:, 20:40, 3 * number: 3 * number + 8] = 255  # a bar moving right
        write_png(frame, str(tmp_path / "my_frames" / f"{number}.png"))
    (tmp_path / "exported").mkdir()
    for name in ("lenet_mnist", "cgan_mnist", "airbench_cifar10", "pos_tagger_ud_ewt", "ngram_sonnets", "lstm_airline",
                 "convlstm_moving_mnist"):
        for suffix in (".json", ".safetensors"):
            (tmp_path / "exported" / f"{name}{suffix}").write_bytes((REPO / "checkpoints" / f"{name}{suffix}").read_bytes())
    runs: dict[str, str] = {}
    for tokens in zoo_commands():
        if needs_real_data(tokens) and real_data_dir() is None:
            continue
        filled = []
        for token in tokens[1:]:
            if token.startswith("<run>/"):
                kind = "airbench" if tokens[1] == "predict" else "lenet"
                token = runs[kind] if token.endswith("best-....ckpt") else runs[kind + "_last"]
            elif token == "<the zoo fit command>":
                token = "zoo fit -c lenet_mnist_mini"
            elif token == "my_photos/":
                token = str(tmp_path / "photos" / "train" / "red")
            elif token == "[IMAGENET1K_V1]":  # torchvision's download, offline here: a local MobileNet V2 file
                token = f"[{backbone_file(tmp_path)}]"
            filled.append(token)
        if tokens[1] == "fit":
            filled += ["--trainer.enable_progress_bar", "false"]
        if "transfer_frozen_dogs_vs_cats" in tokens:  # the README's recipe, at a test's size
            filled += ["--data.init_args.image_size", "32", "--model.init_args.image_size", "32",
                       "--trainer.max_epochs", "1"]
        proc = ok(run_zoo(*filled, cwd=tmp_path, env=env, timeout=600))
        if tokens[1] == "fit":  # the runs write into ./lightning_logs of the working folder
            kind = next((name for name in ("airbench", "transfer") if any(name in t for t in tokens)), "lenet")
            results = json.loads(Path(newest(tmp_path / "lightning_logs", "results.json")).read_text())
            runs[kind], runs[kind + "_last"] = results["best_checkpoint"], results["last_checkpoint"]
        if tokens[1] == "predict":
            assert proc.stdout.strip(), " ".join(tokens)
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "my_weights" / "lenet_mnist.json").is_file()
    assert (tmp_path / "forecast.png").is_file()
    code = "image = __import__('torchvision').io.read_image(%r)\n" % str(tmp_path / "my_digits" / "0.png")
    script = code + python_block().replace('"<repo dir>"', repr(str(REPO)))
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().isdigit(), proc.stderr[-2000:]

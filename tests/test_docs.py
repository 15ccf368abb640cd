"""The README is a map that stays true, and the docs pages' generated blocks match the shipped manifests.

- ``python -m scripts.maintenance.generate_docs --check`` passes: no page is stale against ``checkpoints/*.json``
  and the configs;
- the README has at most 160 lines, keeps the quick start's three commands and no history;
- every ``zoo ...`` command line in the README's (and the docs pages') code blocks names an existing subcommand
  and existing entries (shipped ones where the command needs weights);
- every link to a page (and to a heading of it) and every PNG that the README and the docs show exist.

No torch: only ``zoo.registry``, ``zoo.cli`` and the generator are imported.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.maintenance import generate_docs as gen
from tests.helpers import REPO
from zoo import registry

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MAPS = [README, REPO / "CONTRIBUTING.md", *PAGES]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# ---------------------------------------------------------------------------------------------- (a) generated
def test_generated_blocks_are_up_to_date():
    proc = subprocess.run([sys.executable, "-m", "scripts.maintenance.generate_docs", "--check"], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 0, (
        f"stale docs pages; run `python -m scripts.maintenance.generate_docs`:\n{proc.stdout}{proc.stderr}")


def test_check_reports_a_stale_page_and_a_missing_block():
    rows = gen.read_rows()
    page = DOCS / "pixelcnn.md"
    text = page.read_text(encoding="utf-8")
    on_page = [r for r in rows if r.page == "pixelcnn"]
    assert gen.render(text, on_page, "pixelcnn") == text
    tampered = text.replace("| `pixelcnn_mnist` |", "| `pixelcnn_mnist_old` |", 1)
    assert tampered != text and gen.render(tampered, on_page, "pixelcnn") == text
    without = re.sub(r"<!-- generated: figures -->\n.*?<!-- end generated -->", "", text, flags=re.DOTALL)
    with pytest.raises(gen.DocsError, match="figures"):
        gen.render(without, on_page, "pixelcnn")


def test_every_entry_lands_on_the_page_of_its_model_module():
    classes = gen.defined_classes()
    assert gen.page_of("zoo.models.LeNet", classes) == ("textbook", "ch. 4")
    assert gen.page_of("zoo.models.small_classifiers.LeNet", classes) == ("textbook", "ch. 4")
    assert gen.page_of("zoo.models.MLP", classes) == ("textbook", "ch. 3")
    assert gen.page_of("zoo.models.SparseCNN", classes)[0] == "sparse_dense"
    assert gen.page_of("zoo.models.WGANGP", classes) == ("textbook", "ch. 6")
    with pytest.raises(gen.DocsError, match="MODULE_PAGES"):
        gen.page_of("zoo.models.new_paper.NewNet", classes)
    with pytest.raises(gen.DocsError, match="outside zoo.models"):
        gen.page_of("mypackage.WideLeNet", classes)
    rows = gen.read_rows()
    assert {r.name for r in rows} == set(registry.entries())
    for row in rows:
        assert f"`{row.name}`" in (DOCS / f"{row.page}.md").read_text(encoding="utf-8"), row.name


# ---------------------------------------------------------------------------------------------- (b) README
def test_readme_is_a_short_map_with_the_quick_start():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160
    lines = [line.strip() for line in text.splitlines()]
    for command in ('pip install -c constraints.txt -e ".[dev]"', "zoo fit -c lenet_mnist_mini",
                    "python -m pytest -q -n auto"):
        assert command in lines, f"the quick start lost {command!r}"
    shared = [line for line in lines if "../shared" in line]
    assert shared == [], shared  # users do not have the project's shared folder
    history = re.findall(r"\bissue \d+|\bbefore commit\b|\bcommit [0-9a-f]{7}", text, flags=re.IGNORECASE)
    assert not history, history


# ---------------------------------------------------------------------------------------------- (c) commands
def subcommands() -> set[str]:
    from zoo.cli import zoo_parser

    actions = [a for a in zoo_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


def code_lines(path: Path) -> list[str]:
    """Shell lines of the file's fenced code blocks, continuation lines joined."""
    lines, block, pending = [], None, ""
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = re.match(r"\s*```(\w*)", line)
        if fence:
            block = None if block is not None else fence.group(1)
            continue
        if block is None or block not in ("", "bash", "sh", "shell", "console"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


ENV = re.compile(r"^\s*(?:[A-Za-z_][A-Za-z0-9_]*=(?:<[^>]*>|\S+)\s+)*")


def zoo_commands(path: Path) -> list[list[str]]:
    commands = []
    for line in code_lines(path):
        rest = ENV.sub("", line, count=1)
        if not rest.startswith("zoo ") and rest.strip() != "zoo":
            continue
        commands.append(shlex.split(rest, comments=True))
    return commands


def option_value(tokens: list[str], name: str) -> str | None:
    for i, token in enumerate(tokens):
        if token == name and i + 1 < len(tokens):
            return tokens[i + 1]
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
    return None


def command_problems(tokens: list[str], placeholders: bool) -> list[str]:
    """What is wrong with one ``zoo ...`` command line: an unknown subcommand or entry, or weights it needs that the
    entry does not ship. With ``placeholders``, ``<entry>``-like names pass."""
    entries = registry.entries()
    shipped = {name for name, entry in entries.items() if entry.shipped}
    problems = []

    def entry(name: str | None, needs_weights: bool, what: str) -> None:
        if name is None:
            problems.append(f"{what}: no entry given")
        elif placeholders and name.startswith("<"):
            return
        elif name not in entries:
            problems.append(f"{what}: no entry {name!r}")
        elif needs_weights and name not in shipped:
            problems.append(f"{what}: {name!r} ships no weights")

    if len(tokens) < 2:
        return ["a bare `zoo`"]
    sub = tokens[1]
    if sub in ("--version", "--help", "-h"):
        return []
    if sub not in subcommands():
        return [f"unknown subcommand {sub!r}"]
    args = tokens[2:]
    positional = args[0] if args and not args[0].startswith("-") else None
    if sub in ("fit", "validate", "test", "predict") and positional is None:
        config = option_value(args, "-c") or option_value(args, "--config")
        if config is not None and not (config.endswith((".yaml", ".yml")) and (REPO / config).exists()):
            entry(config, needs_weights=False, what=f"-c {config}")
    elif sub == "predict":  # zoo predict ENTRY|RUN.ckpt PATH ...
        if not positional.endswith(".ckpt"):
            entry(positional, needs_weights=True, what="zoo predict")
    elif sub == "evaluate":
        entry(positional, needs_weights=option_value(args, "--ckpt_path") is None, what="zoo evaluate")
    elif sub == "export":
        entry(positional, needs_weights=False, what="zoo export")
    elif sub == "sample":
        entry(positional, needs_weights=True, what="zoo sample")
    elif sub == "models" and positional is not None:
        wanted = shipped if "--shipped" in args else set(entries)
        if not fnmatch.filter(sorted(wanted), positional):
            problems.append(f"zoo models {positional!r} matches no entry")
    weights = option_value(args, "--weights")
    if weights is not None and weights.startswith("zoo:"):
        entry(weights[len("zoo:"):], needs_weights=True, what=f"--weights {weights}")
    return problems


def test_readme_commands_name_existing_subcommands_and_entries():
    commands = zoo_commands(README)
    assert len(commands) >= 10, "the README's zoo commands were not found"
    used = {tokens[1] for tokens in commands if len(tokens) > 1}
    assert {"models", "fit", "predict", "sample", "evaluate", "export"} <= used, used
    bad = {" ".join(t): p for t in commands if (p := command_problems(t, placeholders=False))}
    assert not bad, bad


@pytest.mark.parametrize("path", [REPO / "CONTRIBUTING.md", *PAGES], ids=lambda p: rel(p))
def test_docs_commands_name_existing_subcommands_and_entries(path):
    bad = {" ".join(t): p for t in zoo_commands(path) if (p := command_problems(t, placeholders=True))}
    assert not bad, bad


def stray_redirects(path: Path) -> list[str]:
    """Shell lines whose command word, after the ``VAR=value`` prefix, holds a ``<`` or ``>`` outside a ``<placeholder>``:
    what an unquoted ``VAR=<two words>`` leaves behind (``dir> zoo fit ...`` redirects into a file named ``zoo``)."""
    bad = []
    for line in code_lines(path):
        words = ENV.sub("", line, count=1).split()
        if words and not re.fullmatch(r"<[^<>]*>", words[0]) and re.search(r"[<>]", words[0]):
            bad.append(line.strip())
    return bad


@pytest.mark.parametrize("path", MAPS, ids=lambda p: rel(p))
def test_shell_lines_have_no_stray_redirect(path):
    assert not stray_redirects(path)


def test_the_redirect_checker_catches_a_split_placeholder(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\nZOO_DATA_DIR=<your data dir> OMP_NUM_THREADS=1 dir> zoo fit -c lenet_mnist\n"
                    "ZOO_DATA_DIR=<your data dir> zoo fit -c lenet_mnist\n```\n")
    assert stray_redirects(page) == ["ZOO_DATA_DIR=<your data dir> OMP_NUM_THREADS=1 dir> zoo fit -c lenet_mnist"]


def test_the_command_checker_catches_stale_commands():
    def problems(line: str) -> list[str]:
        return command_problems(shlex.split(line), placeholders=False)

    assert problems("zoo evaluate lenet_mnist5k")  # ships no weights
    assert not problems("zoo evaluate lenet_mnist5k --ckpt_path run/last.ckpt")
    assert problems("zoo sample pixelcnn_mnist5k")
    assert problems("zoo fit -c lenet_mnst")
    assert problems("zoo train -c lenet_mnist")
    assert problems("zoo fit -c lenet_mnist --weights zoo:lenet_mnist5k")
    assert problems("zoo models 'nothing*'")
    assert not problems("zoo predict run/checkpoints/best-1-2.ckpt photos/")


# ---------------------------------------------------------------------------------------------- (d), (e) links
LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")


def slugs(path: Path) -> set[str]:
    """GitHub's anchors of the file's headings (code blocks skipped)."""
    found, seen, fenced = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if fenced or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def local_links(path: Path) -> list[tuple[bool, str]]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [(bool(bang), target) for bang, target in LINK.findall(text)
            if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("path", MAPS, ids=lambda p: rel(p))
def test_links_to_pages_and_their_headings_exist(path):
    missing = []
    for _, target in local_links(path):
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            missing.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in slugs(resolved):
            missing.append(target)
    assert not missing, f"{rel(path)} links to {missing}"


def test_the_readme_links_every_paper_page_and_guide():
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in local_links(README)}
    pages = {DOCS / f"{page}.md" for page in gen.pages()}
    guides = {DOCS / f"{name}.md" for name in ("data", "training", "shipping", "speed")}
    assert pages | guides <= linked, sorted(rel(p) for p in (pages | guides) - linked)


@pytest.mark.parametrize("path", MAPS, ids=lambda p: rel(p))
def test_pictures_exist(path):
    text = path.read_text(encoding="utf-8")
    images = [t for bang, t in local_links(path) if bang] + re.findall(r"<img[^>]+src=\"([^\"]+)\"", text)
    missing = [image for image in images if not (path.parent / image).exists()]
    assert not missing, f"{rel(path)} shows missing pictures {missing}"
    assert all(image.endswith(".png") for image in images), images


def undocumented_arguments(cls: type, package: str) -> list[str]:
    """The ``__init__`` arguments of ``cls`` named in none of the docstrings of its classes in ``package``."""
    import inspect

    docs = " ".join(f"{inspect.getdoc(c) or ''} {inspect.getdoc(c.__init__) or ''}" for c in cls.__mro__
                    if c.__module__.split(".")[0] == package)
    names = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "args", "kwargs")]
    return [name for name in names if not re.search(rf"\b{name}\b", docs)]


def test_help_of_every_model_and_datamodule_names_each_argument():
    """``help(zoo.models.X)`` and ``help(datamodules.Y)`` document every constructor argument, on the class or on
    a base it forwards to."""
    import inspect

    import lightning as L

    import datamodules
    import zoo.models

    classes = [(cls, "zoo") for cls in vars(zoo.models).values()
               if inspect.isclass(cls) and issubclass(cls, L.LightningModule)]
    classes += [(cls, "datamodules") for cls in vars(datamodules).values()
                if inspect.isclass(cls) and issubclass(cls, L.LightningDataModule)]
    assert len(classes) > 40
    missing = {cls.__name__: names for cls, package in classes if (names := undocumented_arguments(cls, package))}
    assert not missing, f"constructor arguments no docstring names: {missing}"

"""Regenerate the GENERATED blocks of the docs pages from the shipped manifests and the entries' configs.

Every paper or book page under ``docs/`` holds blocks between markers::

    <!-- generated: entries -->      the entries table: model class, datamodule, shipped, parameters, file size,
    <!-- end generated -->           stored dtype, headline metric and the split it was measured on
    <!-- generated: reproduce -->    the `zoo fit -c <entry>` (and `zoo evaluate <entry>`) commands
    <!-- end generated -->
    <!-- generated: figures -->      every shipped figure beside the source's figure
    <!-- end generated -->

The text between the markers comes from ``zoo/configs/<entry>.yaml`` and ``checkpoints/<entry>.json`` only; the rest
of a page is written by hand. An entry lands on the page of its model class's module (``class_path`` of its
config, e.g. ``zoo.models.LeNet`` is defined in ``zoo/models/small_classifiers.py`` -> ``docs/textbook.md``), so a new
entry of an existing model module appears on its page with no other file touched; a new model module is added to
:data:`MODULE_PAGES`.

    python -m scripts.maintenance.generate_docs           # rewrite the pages whose blocks are out of date
    python -m scripts.maintenance.generate_docs --check   # exit 1 listing the stale pages (CI, tests/test_docs.py)

Only ``zoo.registry`` and ``zoo.manifest`` are imported (no torch): model modules are read with ``ast``. The
manifests are read from the repository's ``checkpoints/`` (what ships), whatever ``ZOO_CHECKPOINT_DIR`` says.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from zoo import registry
from zoo.manifest import Manifest, ManifestError, headline, read_manifest

REPO = Path(__file__).resolve().parents[2]

DOCS = REPO / "docs"
CHECKPOINTS = REPO / "checkpoints"
MODELS = REPO / "zoo" / "models"

#: model module (``zoo/models/<module>.py``) -> (docs page, part of that page shown in a first column, or "").
MODULE_PAGES: dict[str, tuple[str, str]] = {
    "sparse_cnn": ("sparse_dense", ""),
    "complex_net": ("complex_networks", ""),
    "convlstm_forecaster": ("convlstm", ""),
    "pixelcnn": ("pixelcnn", ""),
    "airbench": ("airbench", ""),
    "regressions": ("textbook", "ch. 3"),
    "small_classifiers": ("textbook", "ch. 4"),
    "classic_cnns": ("textbook", "ch. 4"),
    "sequence_models": ("textbook", "ch. 5"),
    "autoencoders": ("textbook", "ch. 6"),
    "gans": ("textbook", "ch. 6"),
    "generative": ("textbook", "ch. 6"),
    "transfer": ("textbook", "ch. 7"),
}
#: model classes whose part differs from their module's (the book's MLP, ch. 3, sits with its ch. 4 CNNs).
CLASS_PARTS: dict[str, str] = {"MLP": "ch. 3"}

#: the source's figure for an entry (/work/shared/MODELS.md: the papers' and the book's figures, or the "reach" the
#: zoo was asked to show where the source publishes none), shown beside the shipped figures.
SOURCE_FIGURES: dict[str, str] = {
    "sparse_cnn2_mnist": "paper (mean of 10 seeds): 99.09 %, noise score 103,764; best public rerun (nupic.torch's "
                         "example notebook, one run of 15 epochs): 99.17 %, 103,228, 79.51 % at eta 0.5",
    "dense_cnn2_mnist": "paper (mean of 10 seeds): 99.31 %, noise score 97,040",
    "sparse_cnn1_mnist": "paper, Table 1: 98.41 %, noise score 100,306",
    "dense_cnn1_mnist": "paper, Table 1: 99.14 %, noise score 74,569",
    "sparse_blog_mnist": "blog protocol, 1 epoch, eta 0 / 0.2 / 0.4 / 0.5 / 0.6 / 0.8: "
                         "95.38 / 93.84 / 90.04 / 87.58 / 82.98 / 60.07 %",
    "dense_blog_mnist": "blog protocol, 1 epoch, eta 0 / 0.2 / 0.4 / 0.5 / 0.6 / 0.8: "
                        "96.84 / 94.90 / 77.36 / 59.37 / 38.23 / 12.19 %",
    "complex_net_mnist": "no published figure for this net; reach >= 99.2 % (a real CNN of this size)",
    "real_net_mnist": "a real-valued CNN of this size: about 99.2 %",
    "convlstm_moving_mnist5k": "paper, 3-layer ConvLSTM on Moving MNIST: cross-entropy 3670.85 per sequence "
                               "(FC-LSTM 4832.49); reach: beat copy-last-frame clearly",
    "convlstm_moving_mnist": "paper, 3-layer ConvLSTM: cross-entropy 3670.85 per sequence (FC-LSTM 4832.49); "
                             "PredRNN's table, ConvLSTM: MSE 103.3 per frame, SSIM 0.707; OpenSTL's 200-epoch "
                             "re-training: MSE 29.8",
    "pixelcnn_mnist": "test NLL: PixelCNN 81.30 nats on statically binarized MNIST (PixelRNN paper); on dynamically "
                      "binarized MNIST, re-implementations report about 81.5 (Gated PixelCNN) and 78.6 (PixelSNAIL)",
    "airbench_cifar10": "airbench94: 94 % test accuracy (94.01 % mean) in 3.29 s on one A100",
    "resnet18_book_cifar10": "ResNet-18 on CIFAR-10: 93.02 % after 200 epochs (kuangliu)",
    "mlp_mnist": "reach >= 98.0 %",
    "cnn_mnist": "reach >= 99.4 %",
    "lenet_mnist": "reach >= 99.0 %",
    "linear_regression_book": "the least-squares line of the 15 points (torch.linalg.lstsq)",
    "polynomial_regression_book": "true curve y = 0.9 + 0.5x + 3x^2 + 2.4x^3 (RMSE 0)",
    "lstm_airline": "reach: test RMSE below 47.53 (a well-known LSTM tutorial) and below the seasonal-naive forecast",
    "ngram_sonnets": "reach: held-out perplexity against a count-based trigram baseline",
    "vae_mnist": "PyTorch example: test loss 105.6 nats per image after 20 epochs",
    "transfer_frozen_dogs_vs_cats": "reach >= 97 % validation accuracy with the frozen backbone",
}

BEGIN = re.compile(r"<!-- generated: (?P<name>[a-z]+) -->\n")
END = "<!-- end generated -->"
BLOCK = re.compile(r"(?P<begin><!-- generated: (?P<name>[a-z]+) -->\n)(?P<body>.*?)(?P<end><!-- end generated -->)",
                   re.DOTALL)
NOTE = ("<!-- written by scripts/maintenance/generate_docs.py from zoo/configs/*.yaml and checkpoints/*.json: "
        "edit those (or the script), not this block -->\n")
#: options of a recorded training command that do not change the weights and name the trainer's machine.
DROPPED_OPTIONS = {"--trainer.default_root_dir": 1, "--trainer.enable_progress_bar": 1}


class DocsError(Exception):
    """A page or an entry the generator cannot handle (the message says what to change)."""


@dataclass
class Row:
    """One entry as the pages show it."""

    name: str
    page: str
    part: str
    model_class: str
    datamodule: str
    description: str
    needs_data: bool
    manifest: Optional[Manifest]


# ------------------------------------------------------------------------------------------------ which page
def defined_classes(models_dir: Path = MODELS) -> dict[str, list[str]]:
    """Class name -> the model modules (``zoo/models/<module>.py``) whose top level defines it, read with ``ast``."""
    found: dict[str, list[str]] = {}
    for path in sorted(models_dir.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(path.stem)
    return found


def model_module(class_path: str, classes: dict[str, list[str]]) -> str:
    """The ``zoo/models`` module of a config's ``class_path`` (``zoo.models.LeNet`` or
    ``zoo.models.small_classifiers.LeNet``)."""
    parts = class_path.split(".")
    name, prefix = parts[-1], parts[:-1]
    if prefix[:2] == ["zoo", "models"] and len(prefix) == 3:
        return prefix[2]
    if prefix not in ([], ["zoo", "models"]):
        raise DocsError(f"model class {class_path!r} is outside zoo.models: no docs page covers it")
    modules = classes.get(name, [])
    if len(modules) != 1:
        where = f"in {', '.join(modules)}" if modules else "nowhere in zoo/models/*.py"
        raise DocsError(f"model class {class_path!r} is defined {where}; write its class_path with its module "
                        f"(zoo.models.<module>.{name})")
    return modules[0]


def page_of(class_path: str, classes: dict[str, list[str]]) -> tuple[str, str]:
    """(page, part) of a model class."""
    module = model_module(class_path, classes)
    if module not in MODULE_PAGES:
        raise DocsError(f"model module zoo/models/{module}.py ({class_path}) has no docs page: add it to MODULE_PAGES "
                        f"in scripts/maintenance/generate_docs.py (and write the page from the template of "
                        f"docs/pixelcnn.md)")
    page, part = MODULE_PAGES[module]
    return page, CLASS_PARTS.get(class_path.rsplit(".", 1)[-1], part)


def read_rows(checkpoints: Path = CHECKPOINTS) -> list[Row]:
    """Every entry of ``zoo/configs``, with its page and its shipped manifest (``None`` when it ships none)."""
    classes = defined_classes()
    rows = []
    for name, entry in registry.entries().items():
        try:
            page, part = page_of(entry.model_class, classes)
        except DocsError as err:
            raise DocsError(f"entry {name}: {err}") from None
        manifest_path = checkpoints / f"{name}.json"
        try:
            manifest = read_manifest(manifest_path) if manifest_path.exists() else None
        except ManifestError as err:
            raise DocsError(str(err)) from None
        rows.append(Row(
            name=name, page=page, part=part,
            model_class=entry.model_class.rsplit(".", 1)[-1],
            datamodule=entry.datamodule_class.rsplit(".", 1)[-1],
            description=entry.description,
            needs_data="$ZOO_DATA_DIR" in entry.config_path.read_text(encoding="utf-8"),
            manifest=manifest,
        ))
    return sorted(rows, key=lambda r: (r.page, r.part, r.name))


# ------------------------------------------------------------------------------------------------ formatting
def format_value(key: str, value: float) -> str:
    """A metric as the pages show it: accuracies and shares in percent, counts with thousands separators."""
    last = key.rsplit("/", 1)[-1]
    if "acc" in last or "class_share" in last:
        return f"{100 * value:.2f} %"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def headline_key(manifest: Manifest) -> Optional[str]:
    """The key of the entry's headline metric (the one ``zoo models`` shows)."""
    text = headline(manifest)
    return None if text == "-" else text.split("=", 1)[0]


def split_of(manifest: Manifest, short: bool) -> str:
    measured = manifest.measured_on
    split = str(measured.get("split", "split not recorded"))
    if short:
        return split.split(" (", 1)[0]
    size = measured.get("size")
    dataset = measured.get("dataset")
    parts = [str(dataset)] if dataset else []
    parts.append(split)
    if isinstance(size, int):
        parts.append(f"{size:,}")
    return ", ".join(parts)


def shown_metrics(manifest: Manifest) -> list[str]:
    """The metrics of the figures table: all but losses (unless a loss is the headline) and per-class breakdowns."""
    head = headline_key(manifest)
    keys = []
    for key in manifest.metrics:
        last = key.rsplit("/", 1)[-1]
        if key != head and last == "loss":
            continue
        if re.fullmatch(r"(class_share|label_acc)_\d+", last):
            continue
        keys.append(key)
    if head in keys:  # the headline first
        keys.remove(head)
        keys.insert(0, head)
    return keys


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def with_part(rows: list[Row], header: list[str], cells: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Adds a first "part" column (the book's chapter) when the page has parts."""
    if not any(r.part for r in rows):
        return header, cells
    return ["chapter", *header], [[r.part, *c] for r, c in zip(rows, cells)]


# ------------------------------------------------------------------------------------------------ the blocks
def entries_block(rows: list[Row]) -> str:
    header = ["entry", "model class", "datamodule", "shipped", "parameters", "file size (MB)", "stored dtype",
              "headline metric (split)"]
    cells = []
    for r in rows:
        m = r.manifest
        if m is None:
            cells.append([f"`{r.name}`", f"`{r.model_class}`", f"`{r.datamodule}`", "-", "-", "-", "-", "-"])
            continue
        key = headline_key(m)
        metric = f"{key} {format_value(key, m.metrics[key])} ({split_of(m, short=True)})" if key else "-"
        size = m.file_size
        cells.append([
            f"`{r.name}`", f"`{r.model_class}`", f"`{r.datamodule}`", "yes",
            f"{m.parameters:,}" if m.parameters is not None else "?",
            (f"{size / 1e6:.2f}" if size >= 10_000 else "< 0.01") if isinstance(size, int) else "?",
            m.stored_dtype or "?",
            metric,
        ])
    return table(*with_part(rows, header, cells))


def figures_block(rows: list[Row]) -> str:
    shown = [r for r in rows if r.manifest is not None or r.name in SOURCE_FIGURES]
    header = ["entry", "measured on (dataset, split, size)", "our figures (manifest)", "the source's figure"]
    cells = []
    for r in shown:
        source = SOURCE_FIGURES.get(r.name, "-")
        if r.manifest is None:
            cells.append([f"`{r.name}`", "-", f"not shipped: `zoo fit -c {r.name}` measures it", source])
            continue
        m = r.manifest
        ours = "; ".join(f"{k} {format_value(k, m.metrics[k])}" for k in shown_metrics(m))
        cells.append([f"`{r.name}`", split_of(m, short=False), ours, source])
    return table(*with_part(shown, header, cells))


def data_prefix(needs_data: bool) -> str:
    return "ZOO_DATA_DIR=<your data dir> " if needs_data else ""


def recorded_command(row: Row) -> Optional[str]:
    """The manifest's training command without the trainer's paths, with the data directory as a placeholder."""
    if row.manifest is None:
        return None
    command = re.sub(r"ZOO_DATA_DIR=<[^>]*>", "ZOO_DATA_DIR=<data>", row.manifest.command)  # "<data dir>" is 2 tokens
    try:
        tokens = shlex.split(command)
    except ValueError:
        return None
    if "zoo" not in tokens:
        return None
    start = tokens.index("zoo")
    env = [t for t in tokens[:start] if not t.startswith("ZOO_DATA_DIR=")]
    args, i = [], start
    while i < len(tokens):
        token = tokens[i]
        option = token.split("=", 1)[0]
        if option in DROPPED_OPTIONS:
            i += 1 if "=" in token else 1 + DROPPED_OPTIONS[option]
            continue
        args.append(token)
        i += 1
    if args[:3] != ["zoo", "fit", "-c"] or len(args) < 4 or args[3] != row.name:
        return None
    return data_prefix(row.needs_data) + " ".join(env + [shlex.join(args)])


def reproduce_block(rows: list[Row]) -> str:
    lines = ["```bash"]
    part = None
    for r in rows:
        if r.part and r.part != part:
            part = r.part
            lines.append(f"# --- {part} ---")
        lines.append(f"# {r.name}: {r.description}" if r.description else f"# {r.name}")
        recorded = recorded_command(r)
        if recorded:
            lines.append(f"{recorded}   # the shipped weights' run")
            lines.append(f"{data_prefix(r.needs_data)}zoo evaluate {r.name}   # re-measure the shipped weights")
        else:
            lines.append(f"{data_prefix(r.needs_data)}zoo fit -c {r.name}")
    lines.append("```")
    return "\n".join(lines) + "\n"


BLOCKS = {"entries": entries_block, "figures": figures_block, "reproduce": reproduce_block}


# ------------------------------------------------------------------------------------------------ the pages
def render(text: str, rows: list[Row], page: str) -> str:
    """``text`` with every generated block rewritten; a page must hold each block of :data:`BLOCKS` once."""
    names = [m.group("name") for m in BLOCK.finditer(text)]
    unknown = sorted(set(names) - set(BLOCKS))
    if unknown:
        raise DocsError(f"docs/{page}.md has generated blocks {unknown}; known: {sorted(BLOCKS)}")
    if len(BEGIN.findall(text)) != len(names) or text.count(END) != len(names):
        raise DocsError(f"docs/{page}.md has an unclosed or unopened generated block")
    missing = [n for n in BLOCKS if names.count(n) != 1]
    if missing:
        raise DocsError(f"docs/{page}.md must hold each of the blocks {missing} once: '<!-- generated: NAME -->' "
                        f"... '{END}'")

    def fill(match: re.Match) -> str:
        # blank lines around the content, so Markdown ends the table or fence before the end marker
        return match.group("begin") + NOTE + "\n" + BLOCKS[match.group("name")](rows) + "\n" + match.group("end")

    return BLOCK.sub(fill, text)


def pages() -> list[str]:
    return sorted({page for page, _ in MODULE_PAGES.values()})


def run(check: bool) -> int:
    try:
        rows = read_rows()
        stale = []
        for page in pages():
            path = DOCS / f"{page}.md"
            if not path.exists():
                raise DocsError(f"{path.relative_to(REPO)} is missing (the page of "
                                f"{', '.join(m for m, (p, _) in MODULE_PAGES.items() if p == page)})")
            old = path.read_text(encoding="utf-8")
            new = render(old, [r for r in rows if r.page == page], page)
            if new != old:
                stale.append(path)
                if not check:
                    path.write_text(new, encoding="utf-8")
    except DocsError as err:
        print(f"generate_docs: error: {err}", file=sys.stderr)
        return 1
    for path in stale:
        verb = "stale" if check else "rewritten"
        print(f"{path.relative_to(REPO)}: {verb}")
    if check and stale:
        print("run `python -m scripts.maintenance.generate_docs` to regenerate them", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 listing the stale pages")
    return run(parser.parse_args(argv).check)


if __name__ == "__main__":
    sys.exit(main())

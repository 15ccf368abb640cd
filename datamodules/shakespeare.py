"""Word trigrams of Shakespeare's sonnets for the n-gram word model of chapter 5 of "深度学习入门之PyTorch".

The 154 sonnets (Project Gutenberg eBook #1041, public domain) are shipped inside the package. A trigram is
``((w[i], w[i+1]), w[i+2])`` inside one sonnet. Two settings:

- ``sonnet=2``: Sonnet 2 alone, as in the book; the model sees all its trigrams, and validation and test are
  the same trigrams (an in-sample demonstration, not a held-out figure).
- ``sonnet=None``: all 154 sonnets, split *by sonnet* (seeded) into training, validation and test sonnets.

The vocabulary is built on the training sonnets; words seen fewer than ``min_count`` times there, and every
word outside it, become ``<unk>``. :func:`count_trigram_perplexities` is the count-based baseline.

Your own text (``text_path`` with ``split_by="paragraphs"``) is read the same way with its blank-line-separated
paragraphs in the place of the sonnets: trigrams stay inside a paragraph and whole paragraphs are held out.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal, Optional

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from datamodules._batched import TensorBatchDataset, check_batch_size, tensor_loader
from datamodules._paths import read_utf8, resolve_root
from datamodules._splits import SplitLoaders
from zoo.errors import option

EMBEDDED_SONNETS = "sonnets.txt"
UNK = "<unk>"
ROMAN_NUMERAL = re.compile(r"^[IVXLC]+$")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
Tokenizer = Literal["words", "whitespace"]
SplitBy = Literal["sonnets", "paragraphs"]


def split_sonnets(text: str) -> list[str]:
    """The sonnets of a Gutenberg ``sonnets.txt``: the text between Roman-numeral heading lines (I .. CLIV)."""
    sonnets: list[list[str]] = []
    for line in text.splitlines():
        if ROMAN_NUMERAL.match(line.strip()):
            sonnets.append([])
        elif sonnets and line.strip():
            sonnets[-1].append(line.strip())
    return ["\n".join(lines) for lines in sonnets if lines]


def split_paragraphs(text: str) -> list[str]:
    """The paragraphs of a plain text: its blocks of non-blank lines, separated by blank lines."""
    return [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]


def tokenize(text: str, tokenizer: Tokenizer = "words") -> list[str]:
    """``"words"``: lowercase words with inner apostrophes (``feed'st``), punctuation dropped.
    ``"whitespace"``: the book's ``text.split()`` (punctuation stays on the word, case kept)."""
    if tokenizer == "whitespace":
        return text.split()
    if tokenizer != "words":
        raise ValueError(f"tokenizer must be 'words' or 'whitespace', got {tokenizer!r}")
    return WORD.findall(text.lower().replace("’", "'").replace("‘", "'"))


class Vocabulary:
    """Words <-> ids; id 0 is ``<unk>``, which every word outside the vocabulary maps to."""

    def __init__(self, words: Iterable[str]) -> None:
        self.itos = [UNK] + sorted(set(words) - {UNK})
        self.stoi = {word: index for index, word in enumerate(self.itos)}

    @classmethod
    def from_counts(cls, counts: Counter, min_count: int = 1) -> "Vocabulary":
        return cls(word for word, count in counts.items() if count >= min_count)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def encode(self, words: Sequence[str]) -> list[int]:
        return [self.stoi.get(word, 0) for word in words]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]


def trigrams(ids: Sequence[int]) -> Tensor:
    """All trigrams of one token sequence as rows ``(w[i], w[i+1], w[i+2])``, shape ``(max(len - 2, 0), 3)``."""
    sequence = torch.as_tensor(list(ids), dtype=torch.long)
    if len(sequence) < 3:
        return torch.empty(0, 3, dtype=torch.long)
    return sequence.unfold(0, 3, 1)


def count_trigram_perplexities(
    train: Tensor, val: Tensor, test: Tensor, vocab_size: int
) -> dict[str, float]:
    """Perplexities on ``test`` of two count-based trigram models estimated on ``train`` (rows ``(u, v, w)``).

    - add-k: ``P(w | u, v) = (c(u, v, w) + k) / (c(u, v) + k V)``;
    - interpolated (Jelinek-Mercer): ``P3 = l3 ML(w | u, v) + (1 - l3) P2``, ``P2 = l2 ML(w | v) + (1 - l2) P1``,
      ``P1 = l1 ML(w) + (1 - l1) / V``, a term dropped (weight to the lower order) when its context is unseen.

    ``k`` and the ``l``'s are chosen on ``val`` from a grid. Returns ``perplexity_add_k``,
    ``perplexity_interpolated`` and the chosen ``add_k``, ``lambda3``, ``lambda2``, ``lambda1``.
    """
    tri = Counter(map(tuple, train.tolist()))
    bi_context = Counter((u, v) for u, v, _ in tri.elements())
    bi = Counter((v, w) for _, v, w in tri.elements())
    uni_context = Counter(v for _, v, _ in tri.elements())
    uni = Counter(w for _, _, w in tri.elements())
    total = sum(uni.values())

    def statistics(rows: Tensor) -> dict[str, Tensor]:
        columns: dict[str, list[float]] = {name: [] for name in ("c3", "c2ctx", "c2", "c1ctx", "c1")}
        for u, v, w in rows.tolist():
            columns["c3"].append(tri[(u, v, w)])
            columns["c2ctx"].append(bi_context[(u, v)])
            columns["c2"].append(bi[(v, w)])
            columns["c1ctx"].append(uni_context[v])
            columns["c1"].append(uni[w])
        return {name: torch.tensor(values, dtype=torch.float64) for name, values in columns.items()}

    def add_k(stats: dict[str, Tensor], k: float) -> Tensor:
        return (stats["c3"] + k) / (stats["c2ctx"] + k * vocab_size)

    def interpolated(stats: dict[str, Tensor], l3: float, l2: float, l1: float) -> Tensor:
        p1 = l1 * stats["c1"] / total + (1 - l1) / vocab_size
        ml2 = stats["c2"] / stats["c1ctx"].clamp(min=1)
        p2 = torch.where(stats["c1ctx"] > 0, l2 * ml2 + (1 - l2) * p1, p1)
        ml3 = stats["c3"] / stats["c2ctx"].clamp(min=1)
        return torch.where(stats["c2ctx"] > 0, l3 * ml3 + (1 - l3) * p2, p2)

    def perplexity(probabilities: Tensor) -> float:
        return math.exp(-float(probabilities.log().mean()))

    val_stats, test_stats = statistics(val), statistics(test)
    k = min((10.0**e for e in torch.arange(-4, 0.25, 0.25).tolist()),
            key=lambda k: perplexity(add_k(val_stats, k)))
    grid = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    l3, l2, l1 = min(((a, b, c) for a in grid for b in grid for c in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)),
                     key=lambda lambdas: perplexity(interpolated(val_stats, *lambdas)))
    return {
        "perplexity_add_k": perplexity(add_k(test_stats, k)),
        "perplexity_interpolated": perplexity(interpolated(test_stats, l3, l2, l1)),
        "add_k": k, "lambda3": l3, "lambda2": l2, "lambda1": l1,
    }


class ShakespeareTrigramDataModule(SplitLoaders):
    """Batches ``(context_ids, target_id)``: ``context_ids`` long ``(N, 2)``, ``target_id`` long ``(N,)``.

    Args:
        text_path: a Gutenberg-layout ``sonnets.txt``, or with ``split_by="paragraphs"`` any UTF-8 text
            (``$ZOO_DATA_DIR`` may appear in the path); default: the embedded sonnets.
        sonnet: one sonnet's (paragraph's) number (the book: 2; train = val = test) or ``None`` for all of them,
            split by sonnet (paragraph).
        val_sonnets: sonnets (paragraphs) held out for validation (``sonnet=None`` only).
        test_sonnets: sonnets (paragraphs) held out for testing (``sonnet=None`` only).
        seed: seed of the split by sonnet and (mixed with ``--seed_everything``) of the training trigrams' order,
            a function of the epoch.
        min_count: training-set count a word needs to enter the vocabulary (rarer words become ``<unk>``).
        tokenizer: ``"words"`` or the book's ``"whitespace"`` (see :func:`tokenize`).
        batch_size: batch size of every loader.
        split_by: ``"sonnets"`` (Roman-numeral headings, as ``sonnets.txt``) or ``"paragraphs"`` (blank-line
            separated: your own text).
    """

    def __init__(
        self,
        text_path: Optional[str] = None,
        sonnet: Optional[int] = None,
        val_sonnets: int = 15,
        test_sonnets: int = 15,
        seed: int = 0,
        min_count: int = 2,
        tokenizer: Tokenizer = "words",
        batch_size: int = 128,
        split_by: SplitBy = "sonnets",
    ) -> None:
        super().__init__()
        check_batch_size(batch_size)
        if split_by not in ("sonnets", "paragraphs"):
            raise ValueError(f"split_by must be 'sonnets' or 'paragraphs', got {split_by!r}")
        self.save_hyperparameters()
        split = split_sonnets if split_by == "sonnets" else split_paragraphs
        self.sonnets = [tokenize(text, tokenizer) for text in split(self._read())]
        if not self.sonnets:
            raise ValueError(
                "no sonnets found: expected Roman-numeral heading lines (I, II, ...) as in sonnets.txt; for text of "
                f"your own pass {option('data', 'split_by', 'paragraphs')}" if split_by == "sonnets" else
                f"no paragraphs found in {self.hparams.text_path or 'the embedded sonnets'}: the text is empty")
        self.split_sonnet_numbers = self._split()
        counts = Counter(w for n in self.split_sonnet_numbers["train"] for w in self.sonnets[n - 1])
        self.vocab = Vocabulary.from_counts(counts, min_count)
        self.trigrams = {
            split: torch.cat([trigrams(self.vocab.encode(self.sonnets[n - 1])) for n in numbers])
            for split, numbers in self.split_sonnet_numbers.items()
        }
        self._count_baseline: Optional[dict[str, float]] = None

    def _read(self) -> str:
        path = self.hparams.text_path
        if path is None:
            return (resources.files("datamodules") / "embedded" / EMBEDDED_SONNETS).read_text(encoding="utf-8")
        resolved = resolve_root(path)
        if not Path(resolved).is_file():
            raise FileNotFoundError(f"text file {resolved} not found; pass the path of a UTF-8 text file, or "
                                    f"text_path=None for the embedded sonnets")
        return read_utf8(Path(resolved), "Save it as UTF-8 or pass text_path=None for the embedded sonnets.")

    def _split(self) -> dict[str, list[int]]:
        hp, count = self.hparams, len(self.sonnets)
        if hp.sonnet is not None:
            if not 1 <= hp.sonnet <= count:
                raise ValueError(f"sonnet must be in 1..{count} or None (all sonnets), got {hp.sonnet}")
            return {"train": [hp.sonnet], "val": [hp.sonnet], "test": [hp.sonnet]}
        if hp.val_sonnets < 1 or hp.test_sonnets < 1:
            raise ValueError(f"val_sonnets and test_sonnets must be at least 1, got {hp.val_sonnets} and "
                             f"{hp.test_sonnets}; pass sonnet=<number> for the book's in-sample setting")
        if hp.val_sonnets + hp.test_sonnets >= count:
            raise ValueError(f"val_sonnets + test_sonnets ({hp.val_sonnets} + {hp.test_sonnets}) must leave training "
                             f"{hp.split_by} out of the {count} in the text; lower them or give a longer text")
        order = (torch.randperm(count, generator=torch.Generator().manual_seed(hp.seed)) + 1).tolist()
        test, val = order[: hp.test_sonnets], order[hp.test_sonnets: hp.test_sonnets + hp.val_sonnets]
        train = order[hp.test_sonnets + hp.val_sonnets:]
        return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def unigram_counts(self) -> Tensor:
        """How often each vocabulary id is a training target, shape ``(vocab_size,)``."""
        return torch.bincount(self.trigrams["train"][:, 2], minlength=self.vocab_size)

    def encode_prompt(self, text: str) -> tuple[list[int], list[str]]:
        """Ids of a prompt's words (tokenized like the corpus) and the words that were read as ``<unk>``."""
        words = tokenize(text, self.hparams.tokenizer)
        return self.vocab.encode(words), [w for w in words if w not in self.vocab]

    def setup(self, stage: Optional[str] = None) -> None:
        pass  # everything is built in __init__: the corpus is small

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        rows = self.trigrams[split]
        return tensor_loader(TensorBatchDataset(rows[:, :2], rows[:, 2]), self.hparams.batch_size, shuffle,
                             self.hparams.seed)

    def baselines(self, split: str) -> dict[str, float]:
        """Count-based trigram perplexities on the test trigrams (smoothing tuned on validation)."""
        if split != "test":
            return {}
        if self._count_baseline is None:
            self._count_baseline = count_trigram_perplexities(
                self.trigrams["train"], self.trigrams["val"], self.trigrams["test"], self.vocab_size
            )
        return {f"{k}_count_baseline": v for k, v in self._count_baseline.items() if k.startswith("perplexity")}

    def describe(self) -> dict:
        """Dataset facts for a checkpoint manifest."""
        numbers, hp = self.split_sonnet_numbers, self.hparams
        unit = hp.split_by[:-1]
        if hp.text_path is None:
            dataset = f"Shakespeare's Sonnet {hp.sonnet}" if hp.sonnet is not None else \
                f"Shakespeare's sonnets ({len(self.sonnets)}, held-out split by sonnet)"
        else:
            dataset = f"{Path(hp.text_path).name}, {unit} {hp.sonnet}" if hp.sonnet is not None else \
                f"{Path(hp.text_path).name} ({len(self.sonnets)} {hp.split_by}, held-out split by {unit})"
        return {
            "dataset": f"{dataset} (in-sample: train = test)" if hp.sonnet is not None else dataset,
            "vocab_size": self.vocab_size,
            "train_size": len(self.trigrams["train"]),
            "val_size": len(self.trigrams["val"]),
            "test_size": len(self.trigrams["test"]),
            "test_sonnets": numbers["test"],
            "val_sonnets": numbers["val"],
            "test_unk_targets": int((self.trigrams["test"][:, 2] == 0).sum()),
            "count_baseline_smoothing": {k: v for k, v in (self._count_baseline or {}).items()
                                         if not k.startswith("perplexity")},
        }

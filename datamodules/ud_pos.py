"""Part-of-speech tagging data from Universal Dependencies CoNLL-U files (UPOS, column 4).

The files are read from ``root`` (the zoo's configs use ``$ZOO_DATA_DIR/ud/UD_English-EWT``) and named
``<treebank>-ud-{train,dev,test}.conllu``. ``download=True`` fetches them from the treebank's GitHub release tag.
In a CoNLL-U file, ``#`` lines are comments, a blank line ends a sentence, and of the word lines only those whose
ID is an integer are syntactic words: multiword-token ranges (``3-4``) and empty nodes (``8.1``) carry no UPOS of
their own and are skipped.

A batch is ``((word_ids, char_ids, lengths), tags)``: ``word_ids`` long ``(N, T)``, ``char_ids`` long
``(N, T, L)``, ``lengths`` long ``(N,)`` and ``tags`` long ``(N, T)``, padded with 0 (ids) and
:data:`PAD_TAG` (tags) beyond each sentence's length.

The vocabularies are built from the training split; :class:`SentenceEncoder` turns new sentences into the same
ids, and the datamodule's ``vocabularies`` (its checkpointed state, and the ``vocabularies`` of a shipped
manifest) rebuild it without the treebank, so trained weights tag your own text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch
from torch.utils.data import DataLoader
from torchvision.datasets.utils import download_url

from datamodules._batched import check_batch_size, sample_loader
from datamodules._paths import TEXT_ENCODING, download_failed_error, missing_files_error, resolve_root
from datamodules._splits import SplitLoaders
from zoo.errors import option

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
             "SCONJ", "SYM", "VERB", "X")
PAD_TAG = -100  # F.cross_entropy's default ignore_index
PAD, UNK = "<pad>", "<unk>"
SPLITS = {"train": "train", "val": "dev", "test": "test"}
DEFAULT_SUBDIR = Path("ud") / "UD_English-EWT"
DEFAULT_TREEBANK, DEFAULT_REPOSITORY = "en_ewt", "UD_English-EWT"
RELEASE_URL = "https://raw.githubusercontent.com/UniversalDependencies/{repo}/{tag}/{file}"


class TaggedSentence(NamedTuple):
    words: list[str]
    tags: list[str]


def parse_conllu(lines: Iterable[str], source: str = "<conllu>") -> list[TaggedSentence]:
    """Sentences of syntactic words and their UPOS tags from CoNLL-U lines.

    Comments, multiword-token lines (``3-4``) and empty nodes (``8.1``) are skipped. Raises ``ValueError``
    naming the source and line for a word line without 10 tab-separated fields or with an unknown UPOS tag.
    """
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            if words:
                sentences.append(TaggedSentence(words, tags))
                words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise ValueError(f"{source}, line {number}: expected 10 tab-separated CoNLL-U fields, got {len(fields)}")
        if not fields[0].isdigit():  # "3-4" multiword token or "8.1" empty node
            continue
        if fields[3] not in UPOS_TAGS:
            raise ValueError(f"{source}, line {number}: unknown UPOS tag {fields[3]!r}; expected one of {UPOS_TAGS}")
        words.append(fields[1])
        tags.append(fields[3])
    if words:
        sentences.append(TaggedSentence(words, tags))
    return sentences


def read_conllu(path: Path) -> list[TaggedSentence]:
    """The sentences of a CoNLL-U file (UTF-8, a leading byte-order mark dropped); an error names the file when it is
    not UTF-8 or holds no sentence."""
    try:
        with open(path, encoding=TEXT_ENCODING) as f:
            sentences = parse_conllu(f, str(path))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); CoNLL-U files are UTF-8: "
                         f"replace it with the treebank's release file") from None
    if not sentences:
        raise ValueError(f"{path} holds no sentence: the file is empty or not CoNLL-U; replace it with the "
                         f"treebank's release file")
    return sentences


def most_frequent_tag_accuracy(train: Sequence[TaggedSentence], test: Sequence[TaggedSentence]) -> float:
    """Token accuracy on ``test`` of tagging each word form with its most frequent training tag.

    Forms never seen in training get the most frequent tag overall.
    """
    by_word: dict[str, Counter] = {}
    for sentence in train:
        for word, tag in zip(sentence.words, sentence.tags):
            by_word.setdefault(word, Counter())[tag] += 1
    overall = Counter(tag for sentence in train for tag in sentence.tags).most_common(1)[0][0]
    best = {word: counts.most_common(1)[0][0] for word, counts in by_word.items()}
    pairs = [(best.get(w, overall), t) for s in test for w, t in zip(s.words, s.tags)]
    return sum(guess == tag for guess, tag in pairs) / len(pairs)


def word_form(word: str, lowercase: bool) -> str:
    """The form a word is counted and looked up by in the word vocabulary (the character vocabulary sees it as it
    is written)."""
    return word.lower() if lowercase else word


class Indexer:
    """Symbols <-> ids, with ``<pad>`` = 0 and ``<unk>`` = 1."""

    def __init__(self, counts: Counter, min_count: int = 1) -> None:
        self.itos = [PAD, UNK] + sorted(s for s, c in counts.items() if c >= min_count and s not in (PAD, UNK))
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @classmethod
    def from_symbols(cls, itos: Sequence[str]) -> "Indexer":
        """The indexer whose ``itos`` is ``itos`` (a saved vocabulary); it must start with ``<pad>``, ``<unk>``."""
        if list(itos[:2]) != [PAD, UNK] or not all(isinstance(s, str) for s in itos):
            raise ValueError(f"a vocabulary is a list of strings starting with {PAD!r}, {UNK!r}; got "
                             f"{list(itos[:3])!r}...")
        indexer = cls(Counter())
        indexer.itos, indexer.stoi = list(itos), {s: i for i, s in enumerate(itos)}
        return indexer

    def __len__(self) -> int:
        return len(self.itos)

    def index(self, symbols: Iterable[str]) -> list[int]:
        return [self.stoi.get(s, 1) for s in symbols]


class PosCollator:
    """Pad a list of encoded sentences into one batch (see the module docstring for the shapes)."""

    def __init__(self, max_word_length: int) -> None:
        self.max_word_length = max_word_length

    def __call__(self, sentences: list[tuple[list[int], list[list[int]], list[int]]]):
        n, longest = len(sentences), max(len(words) for words, _, _ in sentences)
        longest_word = min(self.max_word_length, max(len(c) for _, chars, _ in sentences for c in chars))
        word_ids = torch.zeros(n, longest, dtype=torch.long)
        char_ids = torch.zeros(n, longest, longest_word, dtype=torch.long)
        tags = torch.full((n, longest), PAD_TAG, dtype=torch.long)
        for i, (words, chars, sentence_tags) in enumerate(sentences):
            word_ids[i, : len(words)] = torch.tensor(words)
            tags[i, : len(words)] = torch.tensor(sentence_tags)
            for j, word_chars in enumerate(chars):
                clipped = word_chars[:longest_word]
                char_ids[i, j, : len(clipped)] = torch.tensor(clipped)
        lengths = torch.tensor([len(words) for words, _, _ in sentences])
        return (word_ids, char_ids, lengths), tags


class SentenceEncoder:
    """Sentences -> the tagger's input ``(word_ids, char_ids, lengths)`` (padded as in a training batch).

    A sentence is a list of words, or a string split at whitespace. Words outside the word vocabulary (compared
    lowercased with ``lowercase_words``) and characters outside the character vocabulary get ``<unk>``.
    """

    def __init__(self, words: Indexer, chars: Indexer, lowercase_words: bool, max_word_length: int) -> None:
        self.words, self.chars = words, chars
        self.lowercase_words = lowercase_words
        self.collate = PosCollator(max_word_length)

    def ids(self, words: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """The word ids and every word's character ids of one sentence."""
        return self.words.index(word_form(w, self.lowercase_words) for w in words), [self.chars.index(w) for w in words]

    def __call__(self, sentences: Sequence[Sequence[str] | str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(sentences, str):
            raise ValueError(f"the tagger's encoder takes a list of sentences (each a string of words separated by "
                             f"spaces, or a list of words), got one string: pass [{sentences[:40]!r}]")
        split = [sentence.split() if isinstance(sentence, str) else list(sentence) for sentence in sentences]
        words_not_strings = [i for i, words in enumerate(split) if not all(isinstance(w, str) for w in words)]
        if words_not_strings:
            raise ValueError(f"sentence {words_not_strings[0]} holds a word that is not a string: give each sentence "
                             f"as a list of words (strings) or a string of words separated by spaces")
        empty = [i for i, words in enumerate(split) if not words or not all(words)]
        if not split or empty:
            raise ValueError(f"sentence {empty[0] if empty else 0} is empty or holds an empty word: give each "
                             f"sentence as a list of words or a string of words separated by spaces")
        inputs, _ = self.collate([(*self.ids(words), [PAD_TAG] * len(words)) for words in split])
        return inputs


class UDPosDataModule(SplitLoaders):
    """UPOS tagging on a Universal Dependencies treebank (default: English EWT).

    Args:
        root: directory holding the ``.conllu`` files (``$ZOO_DATA_DIR`` may appear in it); default
            ``$ZOO_DATA_DIR/ud/UD_English-EWT``.
        treebank: file prefix (``en_ewt`` for ``en_ewt-ud-train.conllu``).
        repository: the treebank's GitHub repository, for ``download``.
        release: the release tag to download (``r2.16``).
        download: fetch missing files from the release.
        lowercase_words: lowercase the word-embedding vocabulary (the character LSTM still sees the case).
        min_word_count: training count a word needs for its own embedding (rarer ones share ``<unk>``).
        max_word_length: characters of a word the character LSTM reads (longer words are cut).
        batch_size: sentences per batch.
        num_workers: DataLoader workers.
        seed: the training order's seed (mixed with ``--seed_everything``): each epoch's order is a function of
            (seed, epoch), so a run resumed mid-epoch reads the same batches as the run it replaces.
    """

    num_classes = len(UPOS_TAGS)

    def __init__(
        self,
        root: Optional[str] = None,
        treebank: str = DEFAULT_TREEBANK,
        repository: str = DEFAULT_REPOSITORY,
        release: str = "r2.16",
        download: bool = False,
        lowercase_words: bool = True,
        min_word_count: int = 2,
        max_word_length: int = 20,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size)
        self.save_hyperparameters()
        self.sentences: dict[str, list[TaggedSentence]] = {}
        self.encoder: Optional[SentenceEncoder] = None  # the vocabularies: built by setup, or load_state_dict

    @property
    def words(self) -> Optional[Indexer]:
        """The word vocabulary (``None`` before ``setup`` or ``load_state_dict``)."""
        return self.encoder.words if self.encoder is not None else None

    @property
    def chars(self) -> Optional[Indexer]:
        """The character vocabulary (``None`` before ``setup`` or ``load_state_dict``)."""
        return self.encoder.chars if self.encoder is not None else None

    @property
    def root(self) -> Path:
        if self.hparams.root is None:
            return resolve_root(None) / DEFAULT_SUBDIR
        return resolve_root(self.hparams.root)

    def file_name(self, split: str) -> str:
        return f"{self.hparams.treebank}-ud-{SPLITS[split]}.conllu"

    def urls(self) -> list[str]:
        hp = self.hparams
        return [RELEASE_URL.format(repo=hp.repository, tag=hp.release, file=self.file_name(s)) for s in SPLITS]

    @property
    def downloadable(self) -> bool:
        """Whether ``download`` can fetch the files: not for a treebank of your own (another ``treebank`` than
        ``en_ewt`` with the default ``repository``, whose release holds only ``en_ewt`` files)."""
        hp = self.hparams
        return hp.repository != DEFAULT_REPOSITORY or hp.treebank == DEFAULT_TREEBANK

    def _missing_error(self) -> FileNotFoundError:
        files = [self.file_name(s) for s in SPLITS]
        if not self.downloadable:
            return missing_files_error(
                f"CoNLL-U treebank {self.hparams.treebank!r}", self.root, files,
                f"put your treebank's files, named as above, into {self.root} (or name their folder with "
                f"{option('data', 'root')}); for a Universal Dependencies release, also pass its repository "
                f"({option('data', 'repository', 'UD_<Language>-<Name>')}) with {option('data', 'download', True)}.",
            )
        return missing_files_error(
            f"Universal Dependencies {self.hparams.repository}", self.root, files,
            f"pass {option('data', 'download', True)} (needs internet), or download\n    " + "\n    ".join(self.urls())
            + f"\n  into {self.root}.",
        )

    def prepare_data(self) -> None:
        if not self.hparams.download or not self.downloadable:  # setup names the files of your own it misses
            return
        try:
            for split, url in zip(SPLITS, self.urls()):
                if not (self.root / self.file_name(split)).exists():
                    download_url(url, str(self.root), self.file_name(split))
        except Exception as err:  # network failures come in many types
            raise download_failed_error(self._missing_error(), err) from err

    def setup(self, stage: Optional[str] = None) -> None:
        if self.sentences:
            return
        if not all((self.root / self.file_name(s)).exists() for s in SPLITS):
            raise self._missing_error()
        self.sentences = {split: read_conllu(self.root / self.file_name(split)) for split in SPLITS}
        if self.encoder is not None:  # given before setup (``--weights zoo:<tagger entry>``): kept
            return
        train = self.sentences["train"]
        forms = Counter(word_form(w, self.hparams.lowercase_words) for s in train for w in s.words)
        self._set_vocabularies(Indexer(forms, self.hparams.min_word_count),
                               Indexer(Counter(c for s in train for w in s.words for c in w)))

    def _set_vocabularies(self, words: Indexer, chars: Indexer) -> None:
        self.encoder = SentenceEncoder(words, chars, self.hparams.lowercase_words, self.hparams.max_word_length)

    def sentence_encoder(self) -> SentenceEncoder:
        """The encoder of new sentences into this datamodule's ids (after ``setup`` or ``load_state_dict``)."""
        if self.encoder is None:
            raise RuntimeError(f"{type(self).__name__} has no vocabularies yet: call setup() (reads the treebank) "
                               f"or load_state_dict() (a checkpoint's, or a manifest's vocabularies)")
        return self.encoder

    def encode(self, sentence: TaggedSentence) -> tuple[list[int], list[list[int]], list[int]]:
        """Word ids, character ids of every word and tag ids of one sentence."""
        return (*self.sentence_encoder().ids(sentence.words), [UPOS_TAGS.index(t) for t in sentence.tags])

    @property
    def vocabularies(self) -> Optional[dict[str, list[str]]]:
        """``{"words": ..., "chars": ...}``, the symbols in id order (``None`` before ``setup``)."""
        if self.encoder is None:
            return None
        return {"words": list(self.encoder.words.itos), "chars": list(self.encoder.chars.itos)}

    def state_dict(self) -> dict[str, Any]:
        """The vocabularies, saved in Lightning checkpoints (``zoo predict <run>.ckpt`` tags text without the
        treebank)."""
        vocabularies = self.vocabularies
        return {"vocabularies": vocabularies} if vocabularies else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        vocabularies = state_dict.get("vocabularies")
        if vocabularies:
            self._set_vocabularies(Indexer.from_symbols(vocabularies["words"]),
                                   Indexer.from_symbols(vocabularies["chars"]))

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if not self.sentences:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run")
        encoded = [self.encode(s) for s in self.sentences[split]]
        return sample_loader(encoded, self.hparams.batch_size, shuffle, PosCollator(self.hparams.max_word_length),
                             seed=self.hparams.seed, num_workers=self.hparams.num_workers)

    @property
    def class_names(self) -> list[str]:
        """The UPOS tags, in label order."""
        return list(UPOS_TAGS)

    @property
    def vocab_sizes(self) -> tuple[int, int]:
        """(word vocabulary, character vocabulary) sizes, after ``setup``."""
        encoder = self.sentence_encoder()
        return len(encoder.words), len(encoder.chars)

    def baselines(self, split: str) -> dict[str, float]:
        """Token accuracy of the most-frequent-tag baseline on ``split`` (``val`` or ``test``)."""
        if split not in ("val", "test"):
            return {}
        return {"acc_most_frequent_tag": most_frequent_tag_accuracy(self.sentences["train"], self.sentences[split])}

    def describe(self) -> dict:
        """Dataset facts for a checkpoint manifest (call after ``setup``)."""
        hp = self.hparams
        name = f"Universal Dependencies {hp.repository}" if self.downloadable else f"CoNLL-U treebank {hp.treebank!r}"
        facts: dict = {"dataset": f"{name} (UPOS)"}
        for split, sentences in self.sentences.items():
            facts[f"{split}_size"] = len(sentences)
            facts[f"{split}_tokens"] = sum(len(s.words) for s in sentences)
        if self.encoder is not None:
            facts["word_vocab_size"], facts["char_vocab_size"] = self.vocab_sizes
        return facts

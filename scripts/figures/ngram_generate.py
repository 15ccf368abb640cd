"""Continue a prompt with a shipped n-gram word model (chapter 5 of "深度学习入门之PyTorch").

    python -m scripts.figures.ngram_generate ngram_sonnets "when forty" --words 12
    python -m scripts.figures.ngram_generate ngram_sonnet2 "When forty" --words 20

The prompt is tokenized like the entry's corpus; words outside the vocabulary are read as ``<unk>`` (and said
so). ``--temperature 0`` (default) takes the most probable next word, as the book does; a positive temperature
samples with ``--seed``.
"""

from __future__ import annotations

import argparse

import torch

import zoo
from zoo import hub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry", nargs="?", default="ngram_sonnets", help="a shipped n-gram entry")
    parser.add_argument("prompt", nargs="?", default="when forty", help="at least two words")
    parser.add_argument("--words", type=int, default=12, help="how many words to add")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: most probable word; > 0: sample")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    args = parser.parse_args()

    model = zoo.load(args.entry)
    datamodule = hub.build_datamodule(args.entry)
    ids, unknown = datamodule.encode_prompt(args.prompt)
    for word in unknown:
        print(f"note: {word!r} is not in the vocabulary of {args.entry}; it is read as <unk>")
    continuation = model.continue_words(ids, args.words, temperature=args.temperature,
                                        generator=torch.Generator().manual_seed(args.seed))
    print(" ".join(datamodule.vocab.decode(ids + continuation)))


if __name__ == "__main__":
    main()

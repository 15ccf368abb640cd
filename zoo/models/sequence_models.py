"""Sequence models: recurrent networks and word models of chapter 5 of "深度学习入门之PyTorch" (Liao Xingyu, 2017).

- :class:`LSTMForecaster`: a 2-layer LSTM (hidden 4) + Linear reads ``look_back`` months of the
  scaled airline series and forecasts the next month, trained with MSE.
- :class:`NGramLanguageModel`: 2 context words -> Embedding(10) -> Linear 128 -> ReLU ->
  Linear vocab, the neural trigram model of Bengio et al. (2003), trained with cross-entropy.
- :class:`LSTMTagger`: word embedding 100 ⊕ character-LSTM features (char dim 10, hidden 50) ->
  LSTM 128 -> tag classifier (:class:`zoo.layers.LSTMTaggerNet`).

Each model logs its datamodule's baselines (``datamodule.baselines("test")``: seasonal-naive RMSE, count-based
trigram perplexity, most-frequent-tag accuracy) beside its own test metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from zoo.errors import option
from zoo.layers.sequence_tagging import CharLSTMWordFeatures, LSTMTaggerNet
from zoo.models.base import Classifier, Regressor, check_count, datamodule_of

#: the tag of padding positions, which the loss and the accuracy skip: ``F.cross_entropy``'s default
#: ``ignore_index``, the value :class:`datamodules.UDPosDataModule` pads tag sequences with.
PAD_TAG = -100


class LogsDataBaselines:
    """Mixin: at the end of testing, log ``test/<name>`` for each entry of ``datamodule.baselines("test")``."""

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()  # type: ignore[misc]  (the task base logs its epoch metrics)
        baselines = getattr(datamodule_of(self), "baselines", None)
        for name, value in (baselines("test") if callable(baselines) else {}).items():
            self.log(f"test/{name}", float(value))


# ---------------------------------------------------------------------------------------------- forecaster
class LSTMForecaster(LogsDataBaselines, Regressor):
    """One-step forecaster of a scaled series: ``window`` ``(N, look_back, 1)`` -> next value ``(N,)``.

    Batches are ``(window, target)``. The MSE is taken on scaled values; ``val/rmse`` and ``test/rmse`` (and
    predictions) are in the series' own unit (thousands of passengers) after multiplying by the ``scale`` buffer,
    which is copied from the datamodule's ``scale`` at setup and saved with the weights.

    Args:
        look_back: months in a window (the book: 2).
        hidden_size: LSTM hidden size (the book: 4).
        num_layers: stacked LSTM layers (the book: 2).
        predict_change: the LSTM reads the window relative to its last value and forecasts the change from it
            (``forecast = last + Linear(LSTM(window - last))``); the book (``False``) forecasts the level.
        **kwargs: :class:`~zoo.models.base.ZooModule` optimizer arguments.
    """

    def __init__(
        self,
        look_back: int = 2,
        hidden_size: int = 4,
        num_layers: int = 2,
        predict_change: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.register_buffer("scale", torch.tensor(1.0))

    def build_network(self) -> None:
        """Registers ``lstm`` and ``head`` (the names of the shipped weights) instead of one ``network``."""
        hp = self.hparams
        self.lstm = nn.LSTM(1, hp.hidden_size, hp.num_layers, batch_first=True)
        self.head = nn.Linear(hp.hidden_size, 1)

    def setup(self, stage: str) -> None:
        scale = getattr(datamodule_of(self), "scale", None)
        if scale is not None:
            self.scale.fill_(float(scale))

    def input_shape(self) -> tuple[Optional[int], ...]:
        return (None, self.hparams.look_back, 1)

    def forward(self, window: Tensor) -> Tensor:
        """Scaled forecast ``(N,)`` of the month after each ``window`` ``(N, look_back, 1)``."""
        self.check_input(window, self.input_shape(), "window")
        last = window[:, -1:, :]
        inputs = window - last if self.hparams.predict_change else window
        output = self.head(self.lstm(inputs)[0][:, -1]).squeeze(-1)
        return output + last[:, 0, 0] if self.hparams.predict_change else output

    def to_target_unit(self, values: Tensor) -> Tensor:
        return values * self.scale

    @torch.no_grad()
    def forecast(self, series: Union[Tensor, Sequence[float]], steps: int) -> Tensor:
        """The ``steps`` values after ``series`` ``(T,)`` (a tensor or a list of numbers), both in the series' own
        unit (``T >= look_back``; ``steps = 0``: an empty tensor).

        Recursive multi-step forecasting: each one-step forecast becomes the last month of the next window, so
        errors compound with the horizon.
        """
        steps = check_count(self, steps, "forecast(series, steps)", "values to forecast, steps")
        if not isinstance(series, Tensor):
            try:
                series = torch.as_tensor(series, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError):
                raise ValueError(f"{type(self).__name__}.forecast takes the series as a tensor (T,) or a list of "
                                 f"numbers, got {type(series).__name__}") from None
        look_back = self.hparams.look_back
        if series.ndim != 1 or len(series) < look_back:
            raise ValueError(f"a forecast needs the last {look_back} values (look_back) of a series of shape (T,), "
                             f"got shape {tuple(series.shape)}")
        window = (series[-look_back:].to(self.scale) / self.scale).reshape(1, look_back, 1)
        forecasts = []
        for _ in range(steps):
            forecasts.append(self(window))
            window = torch.cat([window[:, 1:], forecasts[-1].reshape(1, 1, 1)], dim=1)
        return self.to_target_unit(torch.cat(forecasts)) if forecasts else series.new_zeros(0)


# ---------------------------------------------------------------------------------------------- n-gram model
class Perplexity(MeanMetric):
    """``exp`` of the weighted mean of per-token negative log-likelihoods (update with a batch's mean NLL)."""

    def compute(self) -> Tensor:
        return super().compute().exp()


class NGramLanguageModel(LogsDataBaselines, Classifier):
    """Neural trigram word model: ``context_ids`` long ``(N, context_size)`` -> next-word logits ``(N, vocab)``.

    Batches are ``(context_ids, target_id)``; ``num_classes`` is the vocabulary size (id 0: ``<unk>``). Logs the
    :class:`~zoo.models.base.Classifier` metrics and ``<stage>/perplexity``.

    Args:
        context_size: words of context (the book: 2).
        embedding_dim: word embedding size (the book: 10).
        hidden_size: hidden layer size (the book: 128).
        dropout: dropout before the output layer (the book: none).
        context_dropout: probability that a training context word is replaced by ``<unk>`` ("blank noising", Xie
            et al., 2017, "Data Noising as Smoothing in Neural Network Language Models", section 3.2); the book:
            none.
        unigram_output_bias: at the start of ``fit``, set the output bias to the log unigram frequencies of the
            training targets (``datamodule.unigram_counts()``), so training starts from the unigram model.
        **kwargs: :class:`~zoo.models.base.Classifier` arguments (``num_classes``, optimizer, ...).
    """

    checkpoint_monitor = "val/perplexity"
    checkpoint_mode = "min"

    def __init__(
        self,
        context_size: int = 2,
        embedding_dim: int = 10,
        hidden_size: int = 128,
        dropout: float = 0.0,
        context_dropout: float = 0.0,
        unigram_output_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.train_perplexity, self.val_perplexity, self.test_perplexity = Perplexity(), Perplexity(), Perplexity()

    def build_network(self) -> nn.Module:
        hp = self.hparams
        return nn.Sequential(
            nn.Embedding(hp.num_classes, hp.embedding_dim),
            nn.Flatten(),
            nn.Linear(hp.context_size * hp.embedding_dim, hp.hidden_size),
            nn.ReLU(inplace=True),
            nn.Dropout(hp.dropout),
            nn.Linear(hp.hidden_size, hp.num_classes),
        )

    def input_shape(self) -> tuple[Optional[int], ...]:
        return (None, self.hparams.context_size)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = datamodule_of(self)
        vocab_size = getattr(datamodule, "vocab_size", None)
        if vocab_size is not None and vocab_size != self.hparams.num_classes:
            raise ValueError(
                f"{type(self).__name__} has num_classes={self.hparams.num_classes} but the datamodule's vocabulary "
                f"has {vocab_size} words; set {option('model', 'num_classes', vocab_size)}"
            )
        if stage == "fit" and self.hparams.unigram_output_bias and hasattr(datamodule, "unigram_counts"):
            counts = datamodule.unigram_counts().float() + 0.5
            with torch.no_grad():
                self.network[-1].bias.copy_((counts / counts.sum()).log())

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        context, target = batch
        if self.hparams.context_dropout > 0:
            blank = torch.rand(context.shape, device=context.device) < self.hparams.context_dropout
            context = context.masked_fill(blank, 0)
        return super().training_step((context, target), batch_idx)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str, accuracy: MulticlassAccuracy) -> Tensor:
        loss = super()._shared_step(batch, stage, accuracy)
        perplexity = getattr(self, f"{stage}_perplexity")
        self.update_epoch_metric(stage, "perplexity", perplexity, loss.detach(), len(batch[1]), prog_bar=False)
        return loss

    @torch.no_grad()
    def continue_words(
        self, context_ids: list[int], num_words: int, temperature: float = 0.0,
        generator: Optional[torch.Generator] = None, unknown_id: Optional[int] = 0,
    ) -> list[int]:
        """Continue ``context_ids`` (at least ``context_size`` ids) by ``num_words`` word ids.

        ``temperature=0`` takes the most probable word (the book); otherwise words are sampled from
        ``softmax(logits / temperature)`` with ``generator``. ``unknown_id`` (``<unk>``) is never produced;
        pass ``None`` to allow it.
        """
        size = self.hparams.context_size
        if isinstance(context_ids, str):
            raise ValueError(f"{type(self).__name__}.continue_words takes word ids, got the text {context_ids!r}: "
                             "encode it with the datamodule's encode_prompt(text) (ShakespeareTrigramDataModule)")
        if len(context_ids) < size:
            raise ValueError(f"a prompt needs at least {size} words of context, got {len(context_ids)}")
        ids = list(context_ids)
        for _ in range(num_words):
            logits = self(torch.tensor([ids[-size:]], device=self.device))[0]
            if unknown_id is not None:
                logits[unknown_id] = -torch.inf
            if temperature <= 0:
                ids.append(int(logits.argmax()))
            else:
                probabilities = (logits / temperature).softmax(-1).cpu()
                ids.append(int(torch.multinomial(probabilities, 1, generator=generator)))
        return ids[len(context_ids):]


# ---------------------------------------------------------------------------------------------- tagger
class LSTMTagger(LogsDataBaselines, Classifier):
    """Part-of-speech tagger on padded sentence batches (see :class:`zoo.layers.LSTMTaggerNet`).

    Batches are ``((word_ids, char_ids, lengths), tags)`` with ``word_ids`` ``(N, T)``, ``char_ids``
    ``(N, T, L)``, ``lengths`` ``(N,)``, ``tags`` ``(N, T)`` padded with ``-100`` (ignored by the loss and the
    accuracy, which is per token). ``forward`` returns scores ``(N, num_classes, T)`` (classes second, as
    ``F.cross_entropy`` and torchmetrics take sequences).

    Args:
        num_words: word vocabulary size of the datamodule (``UDPosDataModule.vocab_sizes[0]``).
        num_chars: character vocabulary size of the datamodule (``vocab_sizes[1]``).
        word_dim, char_dim, char_hidden, hidden_size, bidirectional, dropout, char_bidirectional, num_layers,
            word_dropout: see ``LSTMTaggerNet`` (the defaults are the book's one-directional tagger).
        **kwargs: :class:`~zoo.models.base.Classifier` arguments (``num_classes``: 17 UPOS tags, optimizer, ...).
    """

    def __init__(
        self,
        num_words: int,
        num_chars: int,
        word_dim: int = 100,
        char_dim: int = 10,
        char_hidden: int = 50,
        hidden_size: int = 128,
        bidirectional: bool = False,
        dropout: float = 0.0,
        char_bidirectional: bool = False,
        num_layers: int = 1,
        word_dropout: float = 0.0,
        num_classes: int = 17,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes=num_classes, **kwargs)
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro", ignore_index=PAD_TAG))

    def build_network(self) -> nn.Module:
        hp = self.hparams
        characters = CharLSTMWordFeatures(hp.num_chars, hp.char_dim, hp.char_hidden, hp.char_bidirectional)
        return LSTMTaggerNet(hp.num_words, hp.num_classes, characters, word_dim=hp.word_dim,
                             hidden_size=hp.hidden_size, bidirectional=hp.bidirectional, dropout=hp.dropout,
                             num_layers=hp.num_layers, word_dropout=hp.word_dropout)

    # Training checks the sizes at setup, before anything runs. Validating, testing and predicting with a checkpoint
    # (``--ckpt_path``) restore its datamodule state after setup: a run's checkpoint keeps the vocabularies it trained
    # with, which replace those built from other CoNLL-U files, so these stages check when they start.
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            self.check_vocabularies()

    def on_validation_start(self) -> None:
        super().on_validation_start()
        self.check_vocabularies(self.trainer.ckpt_path)

    def on_test_start(self) -> None:
        super().on_test_start()
        self.check_vocabularies(self.trainer.ckpt_path)

    def on_predict_start(self) -> None:
        super().on_predict_start()
        self.check_vocabularies(self.trainer.ckpt_path)

    def check_vocabularies(self, checkpoint: Optional[str] = None) -> None:
        """Refuse a datamodule whose vocabulary sizes are not the model's ``num_words``, ``num_chars``, naming the
        fix: the model's sizes, or, after restoring ``checkpoint`` (which then held no vocabularies), other data."""
        datamodule = datamodule_of(self)
        if getattr(datamodule, "words", None) is None:  # not a set-up UDPosDataModule
            return
        expected = dict(zip(("num_words", "num_chars"), datamodule.vocab_sizes))
        wrong = {name: size for name, size in expected.items() if self.hparams[name] != size}
        if not wrong:
            return
        got = ", ".join(f"{name}={self.hparams[name]}" for name in wrong)
        if checkpoint:  # its hyperparameters (the sizes) and its weights come with it: no option changes them
            raise ValueError(f"{checkpoint} holds no vocabularies of {type(datamodule).__name__} to restore, and "
                             f"the checkpoint's tagger was trained with {got}, which does not fit the vocabularies "
                             f"built from the datamodule's training file ({', '.join(map(str, wrong.values()))}): "
                             f"test it on the data it was trained on, or pass the checkpoint of a `zoo fit` run with "
                             f"{type(datamodule).__name__} (it keeps its vocabularies)")
        fix = " and ".join(option("model", name, size) for name, size in wrong.items())
        raise ValueError(f"{type(self).__name__} was built with {got}, which does not fit the datamodule's "
                         f"vocabularies; set {fix}")

    def forward(self, inputs: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """Scores ``(N, num_classes, T)`` of ``inputs = (word_ids, char_ids, lengths)``, what the datamodule's
        ``sentence_encoder()`` (``zoo.transforms`` of a tagger entry) returns for a list of sentences."""
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 3 and all(isinstance(t, Tensor) for t in inputs)):
            if isinstance(inputs, Tensor):
                got = f"a tensor of shape {tuple(inputs.shape)}"
            else:
                got = f"a {type(inputs).__name__}" + (f" of {len(inputs)}" if isinstance(inputs, (tuple, list)) else "")
            raise ValueError(f"{type(self).__name__} takes the tuple of tensors (word_ids, char_ids, lengths) that its "
                             f"sentence encoder returns (zoo.transforms(<tagger entry>)(list of sentences)), got {got}")
        word_ids, char_ids, lengths = inputs
        self.check_input(word_ids, (None, None), "word_ids")
        self.check_input(char_ids, (word_ids.shape[0], word_ids.shape[1], None), "char_ids")
        self.check_input(lengths, (word_ids.shape[0],), "lengths")
        longest = word_ids.shape[1]
        if not len(lengths):  # no sentence: no scores (the LSTMs cannot pack an empty batch)
            return self.network.classifier.weight.new_zeros(0, self.network.classifier.out_features, longest)
        if lengths.min() < 1 or lengths.max() > longest:
            raise ValueError(f"{type(self).__name__} expects lengths (the words of each sentence) in 1..{longest}, "
                             f"the padded length T of word_ids {tuple(word_ids.shape)}, got "
                             f"{lengths.min()}..{lengths.max()}")
        return self.network(word_ids, char_ids, lengths).transpose(1, 2)

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Tag ids ``(N, T)``, ``-100`` beyond each sentence's length."""
        inputs = batch[0] if isinstance(batch[0], (tuple, list)) else batch
        tags = self(inputs).argmax(dim=1)
        beyond = torch.arange(tags.shape[1], device=tags.device) >= inputs[2].unsqueeze(1)
        return tags.masked_fill(beyond, PAD_TAG)

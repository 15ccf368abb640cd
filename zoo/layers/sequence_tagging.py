"""LSTM sequence tagging with character-level word features (chapter 5 of "深度学习入门之PyTorch", Liao Xingyu).

Each word is represented by its embedding concatenated with the final hidden state of an LSTM run over its
characters (as in Lample et al., 2016, "Neural Architectures for Named Entity Recognition", section 4.1); a word
LSTM over these vectors and a linear layer give one tag score vector per word. Padded batches go through the
LSTMs as packed sequences, so a sentence's scores do not depend on the padding or on the other sentences.

The book's tagger reads words and characters in one direction. The options ``char_bidirectional`` (the final
states of a forward and a backward character LSTM, Lample et al. 2016, section 4.1; Plank et al. 2016,
"Multilingual POS Tagging with Bi-LSTMs", section 2), ``bidirectional`` and ``num_layers`` (a stacked word
BiLSTM) and ``word_dropout`` (each training word replaced by ``<unk>`` with this probability, so the unknown-word
embedding is trained on real contexts; Kiperwasser & Goldberg 2016, section 6) give the pretrained-free
word + character BiLSTM tagger of those papers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class CharLSTMWordFeatures(nn.Module):
    """Final hidden state of a character LSTM for every word of a padded batch.

    Args:
        num_chars: character vocabulary size (id 0 is padding).
        char_dim: character embedding size (the book: 10).
        hidden_size: LSTM hidden size, the size of the word feature (the book: 50).
        bidirectional: concatenate the final states of a forward and a backward character LSTM (the feature is
            then ``2 * hidden_size`` wide; the book: one direction).

    Shapes: ``char_ids`` ``(N, T, L)`` with 0 beyond each word's characters and for padding words,
    ``word_mask`` bool ``(N, T)`` -> features ``(N, T, out_features)``, zeros at padding words.
    """

    def __init__(self, num_chars: int, char_dim: int = 10, hidden_size: int = 50, bidirectional: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.lstm = nn.LSTM(char_dim, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.out_features = hidden_size * (2 if bidirectional else 1)

    def forward(self, char_ids: Tensor, word_mask: Tensor) -> Tensor:
        words = char_ids[word_mask]  # (W, L): the real words of the whole batch at once
        word_lengths = (words != 0).sum(dim=1).clamp(min=1)  # an empty word still reads one (padding) step
        packed = pack_padded_sequence(self.embedding(words), word_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n (directions, W, hidden), in the original word order
        features = h_n.new_zeros(*word_mask.shape, self.out_features)
        features[word_mask] = torch.cat(list(h_n), dim=-1)  # forward final state, then the backward one
        return features


class LSTMTaggerNet(nn.Module):
    """Word embedding ⊕ character features -> LSTM -> linear tag scores.

    Args:
        num_words: word vocabulary size (id 0 is padding).
        num_tags: number of tags.
        char_features: the per-word character features (the book: ``CharLSTMWordFeatures(num_chars, 10, 50)``);
            any module with ``out_features`` mapping ``(char_ids, word_mask)`` to ``(N, T, out_features)``.
        word_dim: word embedding size (the book: 100).
        hidden_size: word LSTM hidden size (the book: 128).
        bidirectional: read the sentence in both directions (the book: one direction).
        dropout: dropout on the word LSTM's input and output (and between its layers).
        num_layers: stacked word LSTM layers (the book: 1).
        word_dropout: in training, the probability that a word id is replaced by ``unk_id`` (0: off).
        unk_id: the id of the unknown word (``<unk>``: 1 in ``UDPosDataModule``'s vocabulary).

    Shapes: ``word_ids`` ``(N, T)``, ``char_ids`` ``(N, T, L)``, ``lengths`` ``(N,)`` -> scores ``(N, T, num_tags)``
    (beyond a sentence's length the scores are the classifier's bias alone; ignore them).
    """

    def __init__(self, num_words: int, num_tags: int, char_features: nn.Module, word_dim: int = 100,
                 hidden_size: int = 128, bidirectional: bool = False, dropout: float = 0.0, num_layers: int = 1,
                 word_dropout: float = 0.0, unk_id: int = 1) -> None:
        super().__init__()
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.word_embedding = nn.Embedding(num_words, word_dim, padding_idx=0)
        self.char_features = char_features
        self.lstm = nn.LSTM(word_dim + char_features.out_features, hidden_size, num_layers=num_layers,
                            batch_first=True, bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * (2 if bidirectional else 1), num_tags)
        self.word_dropout, self.unk_id = word_dropout, unk_id

    def forward(self, word_ids: Tensor, char_ids: Tensor, lengths: Tensor) -> Tensor:
        longest = word_ids.shape[1]
        word_mask = torch.arange(longest, device=word_ids.device) < lengths.unsqueeze(1)
        if self.training and self.word_dropout > 0:
            dropped = word_mask & (torch.rand(word_ids.shape, device=word_ids.device) < self.word_dropout)
            word_ids = word_ids.masked_fill(dropped, self.unk_id)
        features = torch.cat([self.word_embedding(word_ids), self.char_features(char_ids, word_mask)], dim=-1)
        packed = pack_padded_sequence(self.dropout(features), lengths.cpu(), batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=longest)
        return self.classifier(self.dropout(hidden))

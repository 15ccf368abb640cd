"""Chapter 5 sequences and words: airline windows, Shakespeare trigrams, CoNLL-U POS tagging, and their models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch

from datamodules import AirlinePassengersDataModule, DatasetNotFoundError, ShakespeareTrigramDataModule, UDPosDataModule
from datamodules.airline import make_windows, read_series_csv
from datamodules.shakespeare import count_trigram_perplexities, split_paragraphs, split_sonnets, tokenize, trigrams
from datamodules.ud_pos import PAD_TAG, most_frequent_tag_accuracy, parse_conllu, read_conllu
import zoo
from tests.helpers import CONLLU, ok, run_script, run_zoo, write_ud_treebank
from zoo import export, predict, registry
from zoo.layers import CharLSTMWordFeatures, LSTMTaggerNet
from zoo.models import LSTMForecaster, LSTMTagger, NGramLanguageModel


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kwargs)


# ------------------------------------------------------------------------------------------------ airline
def write_series(path: Path, values: list[float]) -> Path:
    rows = [f"{1949 + i // 12}-{i % 12 + 1:02d},{v}" for i, v in enumerate(values)]
    path.write_text("Month,Passengers\n" + "\n".join(rows) + "\n")
    return path


def test_windows_are_the_previous_months_and_the_next_one():
    series = torch.arange(10.0)
    windows, targets = make_windows(series, look_back=3, first_target=0, end_target=10)
    assert windows.shape == (7, 3, 1) and targets.tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert windows[0, :, 0].tolist() == [0, 1, 2] and windows[-1, :, 0].tolist() == [6, 7, 8]
    with pytest.raises(ValueError, match="look_back"):
        make_windows(series, look_back=0, first_target=0, end_target=10)


def test_embedded_series_is_the_box_jenkins_series():
    dm = AirlinePassengersDataModule()
    assert len(dm.series) == 144 and dm.months[0] == "1949-01" and dm.months[-1] == "1960-12"
    assert dm.series[:3].tolist() == [112, 118, 132] and float(dm.series.max()) == 622


def test_split_is_chronological_with_no_shared_target_month(tmp_path):
    dm = AirlinePassengersDataModule(csv_path=str(write_series(tmp_path / "s.csv", list(range(100, 200)))),
                                     look_back=4, train_fraction=0.7, val_months=10)
    dm.setup()
    targets = {split: dm.datasets[split].tensors[1] * dm.scale for split in ("train", "val", "test")}
    # the series value 100 + t identifies month t
    months = {split: (values.round() - 100).long().tolist() for split, values in targets.items()}
    assert months["train"] == list(range(4, 60))
    assert months["val"] == list(range(60, 70))
    assert months["test"] == list(range(70, 100))
    # a test window reads the months just before its target, training months included
    first_test_window = dm.datasets["test"].tensors[0][0, :, 0] * dm.scale
    assert first_test_window.round().tolist() == [166, 167, 168, 169]
    # the scale is taken from the training part (months 0..69) only
    assert dm.scale == pytest.approx(69.0)


def test_inverse_scaling_recovers_the_series():
    dm = AirlinePassengersDataModule(look_back=2)
    training_part = dm.series[: dm.train_end]
    assert dm.scale == pytest.approx(float(training_part.max() - training_part.min()))
    torch.testing.assert_close(dm.inverse_scale(dm.scaled), dm.series)
    windows, targets = dm.windows("test")
    torch.testing.assert_close(dm.inverse_scale(targets), dm.series[dm.train_end:])


def test_bad_csv_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Month,Passengers\n1949-01,112\n1949-02,many\n")
    with pytest.raises(ValueError, match="row 3.*'many'"):
        read_series_csv(path.read_text(), str(path))
    with pytest.raises(FileNotFoundError, match="embedded"):
        AirlinePassengersDataModule(csv_path=str(tmp_path / "missing.csv"))


def test_forecaster_rmse_is_in_thousands_and_matches_the_last_value_baseline():
    """With a zero head, ``predict_change`` forecasts the last month: its RMSE must equal that baseline's."""
    dm = AirlinePassengersDataModule(look_back=2)
    model = LSTMForecaster(look_back=2, predict_change=True)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    metrics = quiet_trainer().test(model, datamodule=dm, verbose=False)[0]
    assert float(model.scale) == pytest.approx(dm.scale)
    assert metrics["test/rmse"] == pytest.approx(metrics["test/rmse_last_value"], rel=1e-5)
    assert metrics["test/rmse_seasonal_naive"] == pytest.approx(42.5868, abs=1e-3)
    predictions = torch.cat(quiet_trainer().predict(model, datamodule=dm))
    torch.testing.assert_close(predictions, dm.series[dm.train_end - 1:-1])


def test_forecaster_rejects_a_window_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"\(N, 12, 1\), got \(4, 2, 1\)"):
        LSTMForecaster(look_back=12)(torch.zeros(4, 2, 1))


def test_a_forecast_feeds_each_forecast_back_as_the_last_month():
    torch.manual_seed(0)
    model = LSTMForecaster(look_back=3, predict_change=True).eval()
    model.scale.fill_(50.0)
    series = torch.tensor([100.0, 120.0, 90.0, 130.0])
    first = model(series[-3:].reshape(1, 3, 1) / 50)
    second = model(torch.cat([series[-2:] / 50, first]).reshape(1, 3, 1))
    torch.testing.assert_close(model.forecast(series, 2), torch.cat([first, second]) * 50)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)  # no change forecast: the last value, again and again
    torch.testing.assert_close(model.forecast(series, 3), torch.full((3,), 130.0))
    with pytest.raises(ValueError, match=r"last 3 values .* got shape \(2,\)"):
        model.forecast(series[:2], 1)


def test_a_forecast_takes_a_list_of_numbers_and_refuses_negative_steps():
    torch.manual_seed(0)
    model = LSTMForecaster(look_back=3).eval()
    values = [100.0, 120.0, 90.0, 130.0]
    torch.testing.assert_close(model.forecast(values, 2), model.forecast(torch.tensor(values), 2))
    assert model.forecast(values, 0).shape == (0,)  # as sample(0): an empty result
    with pytest.raises(ValueError, match=r"forecast\(series, steps\) takes a whole number of values to forecast, "
                                         r"steps >= 0, got -2"):
        model.forecast(values, -2)
    with pytest.raises(ValueError, match=r"got 1\.5"):
        model.forecast(values, 1.5)
    with pytest.raises(ValueError, match=r"series as a tensor \(T,\) or a list of numbers, got str"):
        model.forecast("100 120 90", 1)


def test_forecast_labels_continue_months_or_count_steps():
    assert predict.following_labels("1960-11", 3) == ["1960-12", "1961-01", "1961-02"]
    assert predict.following_labels("week 7", 2) == ["+1", "+2"]
    assert predict.following_labels("2020-13", 1) == ["+1"]


def test_zoo_predict_forecasts_your_csv_series_with_the_shipped_forecaster(tmp_path, capsys):
    shipped = AirlinePassengersDataModule()
    mine = write_series(tmp_path / "to_1958.csv", shipped.series[:120].tolist())
    expected = zoo.load("lstm_airline").forecast(shipped.series[:120], 3).tolist()
    assert predict.predict_files("lstm_airline", [str(mine)], steps=3) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{mine}\t{month}\t{value:.6g}" for month, value in zip(["1959-01", "1959-02", "1959-03"], expected)]
    short = write_series(tmp_path / "short.csv", [1.0, 2.0])
    bad = tmp_path / "bad.csv"
    bad.write_text("Month,Passengers\n1949-01,many\n")
    big_values = [1e6 + 1e4 * i for i in range(30)]
    big = write_series(tmp_path / "big.csv", big_values)
    assert predict.predict_files("lstm_airline", [str(short), str(bad), str(big)], steps=2, as_json=True) == 1
    out, err = capsys.readouterr()
    assert f"skipped: {short}: a forecast needs the last 12 values" in err
    assert f"skipped: {bad}, row 2: expected a finite number in the last column, got 'many'" in err
    assert f"note: {big} spans 290000 (max - min), the series the model was trained on spanned 309" in err
    big_forecast = zoo.load("lstm_airline").forecast(torch.tensor(big_values), 2).tolist()
    assert json.loads(out) == {"path": str(big), "after": "1951-06", "labels": ["1951-07", "1951-08"],
                               "forecast": pytest.approx(big_forecast, rel=1e-6)}
    with pytest.raises(predict.PredictError, match="none of the 2 series could be forecast.*at least 12 values"):
        predict.predict_files("lstm_airline", [str(short), str(tmp_path / "missing.csv")])
    assert f"cannot read {tmp_path / 'missing.csv'} (FileNotFoundError" in capsys.readouterr().err
    with pytest.raises(predict.PredictError, match="--steps must be between 1 and 10,000, got 0"):
        predict.predict_files("lstm_airline", [str(mine)], steps=0)


def test_zoo_predict_forecasts_with_the_checkpoint_of_a_run_on_your_series(tmp_path):
    mine = write_series(tmp_path / "mine.csv", [100 + 10 * math.sin(i / 2) + i for i in range(60)])
    ok(run_zoo("fit", "-c", "lstm_airline", "--data.init_args.csv_path", str(mine), "--trainer.max_epochs", "2",
               "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path))
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    proc = ok(run_zoo("predict", str(checkpoint), str(mine), "--steps", "2"))
    assert [line.split("\t")[:2] for line in proc.stdout.splitlines()] == [[str(mine), "1954-01"],
                                                                         [str(mine), "1954-02"]]
    assert "note:" not in proc.stderr  # the run's own scale fits its series


# ------------------------------------------------------------------------------------------------ trigrams
THREE_SONNETS = """THE SONNETS

I

From fairest creatures we desire increase,
That thereby beauty’s rose might never die,

II

When forty winters shall besiege thy brow,
And dig deep trenches in thy beauty’s field,

III

Look in thy glass and tell the face thou viewest
"""


def test_trigram_extraction():
    assert trigrams([5, 6, 7, 8]).tolist() == [[5, 6, 7], [6, 7, 8]]
    assert trigrams([5, 6]).shape == (0, 3)


def test_sonnets_tokens_and_trigrams_stay_inside_a_sonnet(tmp_path):
    assert [s.split()[0] for s in split_sonnets(THREE_SONNETS)] == ["From", "When", "Look"]
    assert tokenize("Feed’st thy light’s flame,") == ["feed'st", "thy", "light's", "flame"]
    assert tokenize("Feed’st thy,", "whitespace") == ["Feed’st", "thy,"]
    path = tmp_path / "sonnets.txt"
    path.write_text(THREE_SONNETS, encoding="utf-8")
    dm = ShakespeareTrigramDataModule(text_path=str(path), val_sonnets=1, test_sonnets=1, min_count=1)
    (train_number,) = dm.split_sonnet_numbers["train"]
    words = dm.sonnets[train_number - 1]
    assert len(dm.trigrams["train"]) == len(words) - 2  # one sonnet: no trigram across a boundary
    assert dm.vocab.decode(dm.trigrams["train"][0].tolist()) == words[:3]


def your_text(path: Path, paragraphs: int = 12) -> Path:
    """Paragraphs of a small made-up language, separated by blank lines (one with spaces on it)."""
    words = "the cat sat on a mat and the dog ran to the park".split()
    blocks = [" ".join(words[(i + j) % len(words)] for j in range(20)) + "\nend of part\n" for i in range(paragraphs)]
    path.write_text("\n".join(blocks[:2]) + "\n   \n" + "\n".join(blocks[2:]), encoding="utf-8")
    return path


def test_your_own_text_is_split_by_paragraph(tmp_path):
    text = your_text(tmp_path / "mine.txt")
    assert len(split_paragraphs(text.read_text())) == 12
    assert split_paragraphs("one\ntwo\n\n\nthree\n") == ["one\ntwo", "three"]
    dm = ShakespeareTrigramDataModule(text_path=str(text), split_by="paragraphs", val_sonnets=2, test_sonnets=2,
                                      min_count=1)
    assert sorted(n for numbers in dm.split_sonnet_numbers.values() for n in numbers) == list(range(1, 13))
    assert len(dm.trigrams["train"]) == 8 * (23 - 2)  # 23 words a paragraph, no trigram across paragraphs
    assert dm.describe()["dataset"] == "mine.txt (12 paragraphs, held-out split by paragraph)"
    assert ShakespeareTrigramDataModule().describe()["dataset"] == \
        "Shakespeare's sonnets (154, held-out split by sonnet)"
    with pytest.raises(ValueError, match="no sonnets found.*pass split_by='paragraphs'$"):
        ShakespeareTrigramDataModule(text_path=str(text))
    with pytest.raises(ValueError, match=r"\(15 \+ 15\) must leave training paragraphs out of the 12 in the text"):
        ShakespeareTrigramDataModule(text_path=str(text), split_by="paragraphs")
    with pytest.raises(ValueError, match="at least 1, got 0 and 2"):
        ShakespeareTrigramDataModule(text_path=str(text), split_by="paragraphs", val_sonnets=0, test_sonnets=2)


def test_zoo_sample_continues_a_prompt_with_a_run_on_your_own_text(tmp_path):
    your_text(tmp_path / "mine.txt")
    vocab_size = ShakespeareTrigramDataModule(text_path=str(tmp_path / "mine.txt"), split_by="paragraphs",
                                              val_sonnets=2, test_sonnets=2).vocab_size
    ok(run_zoo("fit", "-c", "ngram_sonnets", "--data.init_args.text_path", "mine.txt", "--data.init_args.split_by",
               "paragraphs", "--data.init_args.val_sonnets", "2", "--data.init_args.test_sonnets", "2",
               "--model.init_args.num_classes", str(vocab_size), "--trainer.max_epochs", "40", cwd=tmp_path))
    checkpoint = str(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    continued = ok(run_zoo("sample", checkpoint, "--prompt", "the cat", "-n", "4", cwd=tmp_path)).stdout.split()
    assert continued == "the cat sat on a mat".split()  # the text's only continuation, learned
    refused = run_zoo("predict", checkpoint, "mine.txt", cwd=tmp_path)
    assert refused.returncode == 2 and "takes runs of image classifiers, taggers and forecasters" in refused.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = run_zoo("sample", checkpoint, "--prompt", "the cat", cwd=elsewhere)
    assert moved.returncode == 2 and "text file mine.txt not found" in moved.stderr
    assert "run from the folder that `zoo fit` ran in" in moved.stderr


def test_vocabulary_is_built_on_training_sonnets_with_unk():
    dm = ShakespeareTrigramDataModule(min_count=2)
    train_words = [w for n in dm.split_sonnet_numbers["train"] for w in dm.sonnets[n - 1]]
    assert dm.vocab.itos[0] == "<unk>"
    assert set(dm.vocab.itos[1:]) == {w for w in set(train_words) if train_words.count(w) >= 2}
    test_words = [w for n in dm.split_sonnet_numbers["test"] for w in dm.sonnets[n - 1]]
    unseen = next(w for w in test_words if w not in set(train_words))
    assert dm.vocab.encode([unseen, "love"]) == [0, dm.vocab.stoi["love"]]
    assert not set(dm.split_sonnet_numbers["train"]) & set(dm.split_sonnet_numbers["test"])
    assert sum(len(v) for v in dm.split_sonnet_numbers.values()) == 154


def test_count_baselines_on_a_predictable_and_on_a_random_corpus():
    cycle = trigrams([1, 2, 3] * 50)
    exact = count_trigram_perplexities(cycle, cycle, cycle, vocab_size=4)
    assert exact["perplexity_interpolated"] < 1.3 and exact["perplexity_add_k"] < 1.3
    noise = trigrams(torch.randint(0, 20, (3000,), generator=torch.Generator().manual_seed(0)).tolist())
    random = count_trigram_perplexities(noise[:2000], noise[2000:2500], noise[2500:], vocab_size=20)
    assert 18 < random["perplexity_interpolated"] < 22  # nothing to learn beyond the uniform unigram


def test_an_unknown_prompt_word_is_read_as_unk_and_the_model_continues():
    dm = ShakespeareTrigramDataModule(sonnet=2, min_count=1, tokenizer="whitespace")
    ids, unknown = dm.encode_prompt("Xyzzy forty")
    assert unknown == ["Xyzzy"] and ids == [0, dm.vocab.stoi["forty"]]
    model = NGramLanguageModel(num_classes=dm.vocab_size)
    continuation = model.continue_words(ids, 5)
    assert len(continuation) == 5 and all(0 < i < dm.vocab_size for i in continuation)  # never <unk>
    with pytest.raises(ValueError, match="at least 2 words"):
        model.continue_words(ids[:1], 5)
    for text in ("thy beauty", ""):  # text, not ids: before, torch's "too many dimensions 'str'" or "got 0" words
        with pytest.raises(ValueError, match=r"^NGramLanguageModel.continue_words takes word ids, got the text .*"
                                             r"encode_prompt\(text\)"):
            model.continue_words(text, 5)


def test_ngram_model_logs_perplexity_and_the_count_baseline():
    dm = ShakespeareTrigramDataModule(sonnet=2, min_count=1)
    model = NGramLanguageModel(num_classes=dm.vocab_size, optimizer="adam", lr=0.01, unigram_output_bias=True)
    quiet_trainer(max_epochs=30).fit(model, datamodule=dm)
    metrics = quiet_trainer().test(model, datamodule=dm, verbose=False)[0]
    assert metrics["test/perplexity"] == pytest.approx(math.exp(metrics["test/loss"]), rel=1e-4)
    assert metrics["test/perplexity"] < 10  # in-sample: Sonnet 2 is memorized
    assert "test/perplexity_interpolated_count_baseline" in metrics


def test_ngram_vocabulary_mismatch_names_the_fix():
    with pytest.raises(ValueError, match="set num_classes=98$"):
        quiet_trainer(fast_dev_run=1).fit(NGramLanguageModel(num_classes=50), datamodule=ShakespeareTrigramDataModule(
            sonnet=2, min_count=1, tokenizer="whitespace"))


def test_zoo_sample_continues_a_prompt_with_an_unknown_word():
    proc = ok(run_zoo("sample", "ngram_sonnets", "--prompt", "when xyzzy", "-n", "6", timeout=120))
    assert "'xyzzy' is not in the vocabulary" in proc.stderr
    assert len(proc.stdout.strip().splitlines()[-1].split()) == 2 + 6
    sampled = [ok(run_zoo("sample", "ngram_sonnets", "--prompt", "when forty", "-n", "8", "--temperature", "1",
                          "--seed", seed)).stdout for seed in ("1", "1", "2")]
    assert sampled[0] == sampled[1] != sampled[2]  # sampling follows --seed
    for args, message in ((["ngram_sonnets"], "give --prompt"), (["ngram_sonnets", "--prompt", "when"],
                                                                  "at least 2 words"),
                          (["lenet_mnist", "--prompt", "when forty"], "does not continue text")):
        refused = run_zoo("sample", *args)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr


# ------------------------------------------------------------------------------------------------ POS tagging
def test_conllu_parsing_skips_comments_multiword_tokens_and_empty_nodes():
    sentences = parse_conllu(CONLLU.splitlines(keepends=True))
    assert [s.words for s in sentences] == [["I", "do", "n't", "know", "."], ["Bush", "left", "early"]]
    assert sentences[0].tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert sentences[1].tags == ["PROPN", "VERB", "ADV"]


def test_conllu_errors_name_the_line():
    with pytest.raises(ValueError, match="x.conllu, line 2: expected 10 tab-separated"):
        parse_conllu(["# c\n", "1\tword\tNOUN\n"], "x.conllu")
    with pytest.raises(ValueError, match="line 1: unknown UPOS tag 'NN'"):
        parse_conllu(["1\tdog\tdog\tNN\tNN\t_\t0\troot\t_\t_\n"])


def test_a_byte_order_mark_is_not_part_of_the_first_line_of_a_users_file(tmp_path, capsys):
    """Windows editors and Excel's "CSV UTF-8" start a UTF-8 file with a byte-order mark (U+FEFF): it is no part of
    the first comment, word or field of a CoNLL-U file, a text to tag, a text to learn or a CSV series."""
    for name, conllu in (("comment.conllu", CONLLU), ("words.conllu", CONLLU.split("\n", 3)[3])):
        path = tmp_path / name
        path.write_text("\ufeff" + conllu, encoding="utf-8")
        assert read_conllu(path) == parse_conllu(CONLLU.splitlines())
    text = tmp_path / "bom.txt"
    text.write_text("\ufeffThe dog barks .\n", encoding="utf-8")
    assert predict.predict_files("pos_tagger_ud_ewt", [str(text)], as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["words"] == ["The", "dog", "barks", "."]
    sonnets = tmp_path / "sonnets.txt"
    sonnets.write_text("\ufeff" + THREE_SONNETS.split("\n", 2)[2], encoding="utf-8")  # starts at heading "I"
    dm = ShakespeareTrigramDataModule(text_path=str(sonnets), val_sonnets=1, test_sonnets=1, min_count=1,
                                      tokenizer="whitespace")
    assert len(dm.sonnets) == 3 and not any("\ufeff" in word for word in dm.vocab.itos)
    series = tmp_path / "series.csv"
    series.write_text("\ufeffMonth,Passengers\n1949-01,112\n1949-02,118\n", encoding="utf-8")
    assert predict.read_series(str(series))[0] == ["1949-01", "1949-02"]


def test_most_frequent_tag_baseline():
    train = parse_conllu(CONLLU.splitlines())
    test = parse_conllu(["1\tI\tI\tPRON\t_\t_\t0\troot\t_\t_", "2\tleft\t_\tADJ\t_\t_\t1\tamod\t_\t_",
                         "3\tzebra\t_\tNOUN\t_\t_\t1\tobj\t_\t_"])
    # "I" -> PRON (right), "left" -> VERB (wrong), "zebra" unseen -> the most frequent tag, VERB (wrong)
    assert most_frequent_tag_accuracy(train, test) == pytest.approx(1 / 3)


@pytest.fixture
def ud_root(tmp_path: Path) -> Path:
    """A tiny treebank in the real file layout: the same sentences in all three splits."""
    return write_ud_treebank(tmp_path)


def test_ud_batches_are_padded(ud_root):
    dm = UDPosDataModule(root=str(ud_root), batch_size=2, min_word_count=1)
    dm.setup()
    (word_ids, char_ids, lengths), tags = next(iter(dm.val_dataloader()))
    assert lengths.tolist() == [5, 3] and word_ids.shape == (2, 5) and tags.shape == (2, 5)
    assert char_ids.shape == (2, 5, 5)  # "early": 5 characters
    assert tags[1, 3:].tolist() == [PAD_TAG, PAD_TAG] and word_ids[1, 3:].tolist() == [0, 0]
    assert dm.words.itos[word_ids[0, 0]] == "i"  # lowercased for the word embedding
    assert dm.chars.itos[char_ids[0, 0, 0]] == "I"  # the characters keep the case


def test_missing_treebank_names_files_and_urls(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"en_ewt-ud-train.conllu(.|\n)*raw.githubusercontent.com"):
        UDPosDataModule(root=str(tmp_path)).setup()


def test_missing_files_of_your_own_treebank_name_it_and_offer_no_download_that_cannot_work(tmp_path):
    write_ud_treebank(tmp_path, treebank="my")
    (tmp_path / "my-ud-test.conllu").unlink()
    with pytest.raises(DatasetNotFoundError) as caught:
        UDPosDataModule(root=str(tmp_path), treebank="my").setup()
    message = str(caught.value)
    assert message.startswith(f"CoNLL-U treebank 'my' not found in {tmp_path.resolve()}")
    assert "my-ud-test.conllu   (missing)" in message and "my-ud-train.conllu\n" in message
    assert "UD_English-EWT" not in message and "githubusercontent" not in message
    assert "pass download=True" not in message  # EWT's release has no my-ud-*.conllu
    # another UD treebank downloads:
    assert "also pass its repository (repository='UD_<Language>-<Name>') with download=True" in message
    dm = UDPosDataModule(root=str(tmp_path), treebank="my", download=True)
    dm.prepare_data()  # nothing to fetch from UD_English-EWT: setup names the missing file
    with pytest.raises(DatasetNotFoundError, match="CoNLL-U treebank 'my' not found"):
        dm.setup()
    other = UDPosDataModule(root=str(tmp_path), treebank="fr_gsd", repository="UD_French-GSD")
    with pytest.raises(DatasetNotFoundError,
                       match=r"(.|\n)*pass download=True \(needs internet\)(.|\n)*UD_French-GSD/r2.16/fr_gsd-ud-test"):
        other.setup()
    write_ud_treebank(tmp_path, treebank="my")
    mine = UDPosDataModule(root=str(tmp_path), treebank="my")
    mine.setup()
    assert mine.describe()["dataset"] == "CoNLL-U treebank 'my' (UPOS)"  # what an exported manifest records


def test_padding_does_not_change_a_sentences_predictions():
    torch.manual_seed(0)
    net = LSTMTaggerNet(num_words=30, num_tags=5, char_features=CharLSTMWordFeatures(num_chars=20)).eval()
    words = torch.tensor([[3, 4, 5]])
    chars = torch.tensor([[[1, 2, 0], [3, 0, 0], [4, 5, 6]]])
    alone = net(words, chars, torch.tensor([3]))
    # the same sentence padded to 6 words and 8 characters, next to a longer sentence
    padded_words = torch.zeros(2, 6, dtype=torch.long)
    padded_chars = torch.zeros(2, 6, 8, dtype=torch.long)
    padded_words[0] = torch.tensor([7, 8, 9, 10, 11, 12])
    padded_chars[0] = torch.randint(1, 20, (6, 8))
    padded_words[1, :3], padded_chars[1, :3, :3] = words[0], chars[0]
    batched = net(padded_words, padded_chars, torch.tensor([6, 3]))
    torch.testing.assert_close(batched[1, :3], alone[0], atol=1e-6, rtol=1e-5)


def test_tagger_vocabulary_mismatch_names_the_fix(ud_root):
    dm = UDPosDataModule(root=str(ud_root), min_word_count=1)
    with pytest.raises(ValueError, match=r"set num_words=10 and num_chars=\d+$"):
        quiet_trainer(fast_dev_run=1).fit(LSTMTagger(num_words=99, num_chars=99), datamodule=dm)


def test_tagger_learns_the_tiny_treebank_and_predicts_padded_tags(ud_root):
    torch.manual_seed(0)
    dm = UDPosDataModule(root=str(ud_root), batch_size=2, min_word_count=1)
    dm.setup()
    model = LSTMTagger(*dm.vocab_sizes, word_dim=16, char_hidden=8, hidden_size=16, optimizer="adam", lr=0.05)
    quiet_trainer(max_epochs=15).fit(model, datamodule=dm)
    metrics = quiet_trainer().test(model, datamodule=dm, verbose=False)[0]
    assert metrics["test/acc"] == 1.0
    assert metrics["test/acc_most_frequent_tag"] == pytest.approx(1.0)
    predictions = quiet_trainer().predict(model, datamodule=dm)[0]
    assert predictions[1, 3:].tolist() == [PAD_TAG, PAD_TAG]


# ------------------------------------------------------------------------------------------------ tagging your own text
SENTENCES = [["I", "do", "n't", "know", "."], ["Bush", "left", "early"]]  # CONLLU's, in order
TAGGED = ["I/PRON do/AUX n't/PART know/VERB ./PUNCT", "Bush/PROPN left/VERB early/ADV"]


def trained_tagger(ud_root: Path, **trainer_args) -> tuple[LSTMTagger, UDPosDataModule, L.Trainer]:
    torch.manual_seed(0)
    dm = UDPosDataModule(root=str(ud_root), batch_size=2, min_word_count=1)
    dm.setup()
    model = LSTMTagger(*dm.vocab_sizes, word_dim=16, char_hidden=8, hidden_size=16, optimizer="adam", lr=0.05)
    trainer = quiet_trainer(max_epochs=15, **trainer_args)
    trainer.fit(model, datamodule=dm)
    return model.eval(), dm, trainer


def test_the_encoder_gives_the_training_batches_ids_and_unk_for_unseen_symbols(ud_root):
    dm = UDPosDataModule(root=str(ud_root), batch_size=2, min_word_count=1)
    dm.setup()
    (word_ids, char_ids, lengths), _ = next(iter(dm.val_dataloader()))
    for sentences in (SENTENCES, ["I do n't know .", "Bush left early"]):  # lists of words or strings
        encoded = dm.sentence_encoder()(sentences)
        assert all(torch.equal(a, b) for a, b in zip(encoded, (word_ids, char_ids, lengths)))
    restored = UDPosDataModule(root="/nowhere", min_word_count=1)  # no treebank: the saved vocabularies only
    restored.load_state_dict(dm.state_dict())
    assert torch.equal(restored.sentence_encoder()(SENTENCES)[0], word_ids)
    unseen_word, unseen_chars, _ = restored.sentence_encoder()(["KNOW Zq"])
    assert unseen_word.tolist() == [[dm.words.stoi["know"], 1]]  # lowercased for the words; "zq" unseen
    assert unseen_chars[0, 1].tolist() == [1, 1, 0, 0]  # neither "Z" nor "q" is in the tiny treebank (padded to "KNOW")
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        restored.sentence_encoder()(["I know", "  "])
    with pytest.raises(RuntimeError, match="no vocabularies yet: call setup"):
        UDPosDataModule(root="/nowhere").sentence_encoder()


def test_the_encoder_asks_for_a_list_of_sentences_when_given_one_string_or_non_string_words(ud_root):
    dm = UDPosDataModule(root=str(ud_root), min_word_count=1)
    dm.setup()
    with pytest.raises(ValueError, match=r"takes a list of sentences .* got one string: pass \['I know'\]"):
        dm.sentence_encoder()("I know")
    with pytest.raises(ValueError, match="sentence 1 holds a word that is not a string"):
        dm.sentence_encoder()(["I know", [3, 4]])


def test_the_tagger_names_what_forward_takes():
    model = LSTMTagger(num_words=30, num_chars=20, word_dim=8, char_hidden=4, hidden_size=8).eval()
    word_ids, char_ids = torch.randint(1, 30, (2, 3)), torch.randint(1, 20, (2, 3, 4))
    with pytest.raises(ValueError, match=r"takes the tuple of tensors \(word_ids, char_ids, lengths\).*"
                                         r"got a tensor of shape \(2, 3\)"):
        model(word_ids)
    with pytest.raises(ValueError, match=r"got a tuple of 2"):
        model((word_ids, char_ids))
    with pytest.raises(ValueError, match=r"lengths \(the words of each sentence\) in 1\.\.3.*got 2\.\.5"):
        model((word_ids, char_ids, torch.tensor([5, 2])))
    with pytest.raises(ValueError, match=r"in 1\.\.3.*got 0\.\.3"):
        model((word_ids, char_ids, torch.tensor([3, 0])))
    assert model((word_ids, char_ids, torch.tensor([3, 2]))).shape == (2, 17, 3)
    empty = (word_ids[:0], char_ids[:0], torch.tensor([], dtype=torch.long))  # no sentence: no scores
    assert model(empty).shape == (0, 17, 3)
    assert model.predict_step((empty, None), 0).shape == (0, 3)


def test_a_runs_checkpoint_tests_validates_and_predicts_other_conllu_files_with_its_own_vocabularies(ud_root, tmp_path):
    """``zoo test/validate/predict --ckpt_path <run>.ckpt`` on a treebank of your own: the vocabularies built from the
    other files' training split (smaller here) give way to the checkpoint's, restored after setup; unseen words are
    ``<unk>``."""
    model, dm, trainer = trained_tagger(ud_root)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    other = tmp_path / "ud2"
    other.mkdir()
    bush = CONLLU.split("\n\n")[1] + "\n\n"  # "Bush left early" only: 5 words, 13 characters
    unseen = "1\tBush\tBush\tPROPN\t_\t_\t2\tnsubj\t_\t_\n2\tleft\tleave\tVERB\t_\t_\t0\troot\t_\t_\n" \
             "3\tyesterday\tyesterday\tNOUN\t_\t_\t2\tobl\t_\t_\n\n"
    for split in ("train", "dev", "test"):
        (other / f"my-ud-{split}.conllu").write_text(bush * 2 + (unseen if split == "test" else ""), encoding="utf-8")
    run_args = dict(num_words=model.hparams.num_words, num_chars=model.hparams.num_chars, word_dim=16, char_hidden=8,
                    hidden_size=16)
    for method in ("test", "validate", "predict"):
        mine = UDPosDataModule(root=str(other), treebank="my", batch_size=2, min_word_count=1)
        results = getattr(quiet_trainer(), method)(LSTMTagger(**run_args), datamodule=mine,
                                                   ckpt_path=str(tmp_path / "run.ckpt"))
        assert mine.vocabularies == dm.vocabularies
        if method == "test":  # the accuracy of the run's model on the test sentences encoded by the run's datamodule
            test = read_conllu(other / "my-ud-test.conllu")
            tagged = model(dm.sentence_encoder()([s.words for s in test])).argmax(dim=1)
            right = [dm.class_names[i] == tag for s, ids in zip(test, tagged.tolist()) for i, tag in zip(ids, s.tags)]
            assert results[0]["test/acc"] == pytest.approx(sum(right) / len(right))
        elif method == "predict":
            assert results[0][0, :3].tolist() == [dm.class_names.index(t) for t in ("PROPN", "VERB", "ADV")]
    without = torch.load(tmp_path / "run.ckpt", weights_only=False)
    del without["UDPosDataModule"]  # a checkpoint that holds no vocabularies: the tagger's sizes still must fit
    torch.save(without, tmp_path / "no_vocabularies.ckpt")
    mine = UDPosDataModule(root=str(other), treebank="my", min_word_count=1)
    with pytest.raises(ValueError, match=r"no_vocabularies.ckpt holds no vocabularies(.|\n)*the checkpoint's "
                                         r"tagger was trained with num_words=10, num_chars=21.*test it on"):
        quiet_trainer().test(LSTMTagger(**run_args), datamodule=mine, ckpt_path=str(tmp_path / "no_vocabularies.ckpt"))


def test_an_exported_tagger_tags_your_text_files_without_the_treebank(ud_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path / "shipped"))
    model, dm, trainer = trained_tagger(ud_root)
    trainer.save_checkpoint(tmp_path / "tagger.ckpt")
    export.export("pos_tagger_ud_ewt", str(tmp_path / "tagger.ckpt"), fit_command="zoo fit -c pos_tagger_ud_ewt")
    assert registry.get("pos_tagger_ud_ewt").manifest().vocabularies == dm.vocabularies
    expected = model(dm.sentence_encoder()(SENTENCES)).argmax(dim=1)
    for conllu in ud_root.glob("*.conllu"):
        conllu.unlink()  # a user has the package and its weights, not the treebank
    assert torch.equal(zoo.load("pos_tagger_ud_ewt")(zoo.transforms("pos_tagger_ud_ewt")(SENTENCES)).argmax(dim=1),
                       expected)
    text = tmp_path / "mine.txt"
    text.write_text(" ".join(SENTENCES[0]) + "\n\n  " + " ".join(SENTENCES[1]) + "\n", encoding="utf-8")
    assert predict.predict_files("pos_tagger_ud_ewt", [str(text)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{text}:1\t{TAGGED[0]}", f"{text}:3\t{TAGGED[1]}"]
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 .\n".encode("latin-1"))
    assert predict.predict_files("pos_tagger_ud_ewt", [str(latin1), str(text)], as_json=True) == 1
    out, err = capsys.readouterr()
    assert f"skipped: cannot read {latin1} (UnicodeDecodeError" in err
    assert json.loads(out.splitlines()[1]) == {"path": str(text), "line": 3, "words": SENTENCES[1],
                                               "tags": [tag.split("/")[1] for tag in TAGGED[1].split()]}
    with pytest.raises(predict.PredictError, match="no sentence to tag"):
        predict.predict_files("pos_tagger_ud_ewt", [str(latin1)])


@pytest.mark.slow
def test_zoo_predict_tags_text_with_the_checkpoint_of_a_zoo_fit_run(ud_root, tmp_path):
    dm = UDPosDataModule(root=str(ud_root), min_word_count=1)
    dm.setup()
    num_words, num_chars = dm.vocab_sizes
    ok(run_zoo("fit", "--model", "LSTMTagger", "--model.init_args.num_words", str(num_words),
               "--model.init_args.num_chars", str(num_chars), "--model.init_args.word_dim", "16",
               "--model.init_args.char_hidden", "8", "--model.init_args.hidden_size", "16",
               "--model.init_args.optimizer", "adam", "--model.init_args.lr", "0.05", "--data", "UDPosDataModule",
               "--data.init_args.root", str(ud_root), "--data.init_args.min_word_count", "1",
               "--data.init_args.batch_size", "2", "--trainer.max_epochs", "15", "--seed_everything", "0",
               "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false", cwd=tmp_path))
    (checkpoint,) = (tmp_path / "lightning_logs" / "version_0" / "checkpoints").glob("best*.ckpt")
    text = tmp_path / "mine.txt"
    text.write_text("\n".join(" ".join(words) for words in SENTENCES) + "\n", encoding="utf-8")
    for conllu in ud_root.glob("*.conllu"):
        conllu.unlink()  # the checkpoint's vocabularies, not the treebank, encode the text
    proc = ok(run_zoo("predict", str(checkpoint), str(text)))
    assert proc.stdout.splitlines() == [f"{text}:1\t{TAGGED[0]}", f"{text}:2\t{TAGGED[1]}"]


@pytest.mark.realdata
def test_the_shipped_tagger_tags_the_ewt_test_split_through_zoo_transforms_at_its_manifest_accuracy(real_data):
    """The manifest's vocabularies are the ones the weights trained with: tagging the raw EWT test sentences through
    ``zoo.transforms`` gives the manifest's test accuracy."""
    test = read_conllu(real_data / "ud" / "UD_English-EWT" / "en_ewt-ud-test.conllu")
    model, encode = zoo.load("pos_tagger_ud_ewt"), zoo.transforms("pos_tagger_ud_ewt")
    tags = zoo.class_names("pos_tagger_ud_ewt")
    right = 0
    with torch.inference_mode():
        for start in range(0, len(test), 256):
            batch = test[start:start + 256]
            for sentence, ids in zip(batch, model(encode([s.words for s in batch])).argmax(dim=1).tolist()):
                right += sum(tags[i] == tag for i, tag in zip(ids, sentence.tags))
    tokens = sum(len(s.words) for s in test)
    assert right / tokens == pytest.approx(registry.get("pos_tagger_ud_ewt").manifest().metrics["test/acc"], abs=1e-5)


@pytest.mark.realdata
def test_real_ud_ewt_counts_and_baseline(real_data):
    root = real_data / "ud" / "UD_English-EWT"
    if not (root / "en_ewt-ud-train.conllu").exists():
        pytest.skip(f"UD English EWT not in {root}")
    dm = UDPosDataModule(root=str(root))
    dm.setup()
    facts = dm.describe()
    assert (facts["train_size"], facts["train_tokens"]) == (12544, 204577)
    assert (facts["val_size"], facts["val_tokens"]) == (2001, 25147)
    assert (facts["test_size"], facts["test_tokens"]) == (2077, 25094)
    assert dm.baselines("test")["acc_most_frequent_tag"] == pytest.approx(0.8620, abs=1e-4)

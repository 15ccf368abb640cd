"""Use shipped weights on your own files: ``zoo predict ENTRY PATH ...`` and ``zoo sample ENTRY`` (an image grid,
or for an n-gram entry the continuation of ``--prompt``).

Both need only the installed zoo and its shipped weights: no dataset, no ``ZOO_DATA_DIR``. Images are decoded by
torchvision and prepared with the manifest's ``preprocessing`` (:mod:`zoo.preprocessing`), so a digit drawn dark on
light paper is inverted and fitted to 28x28 like an MNIST digit. For the part-of-speech tagger, the files are UTF-8
text with one sentence per line (words separated by spaces), encoded with the manifest's ``vocabularies``. For a
series forecaster, they are CSV series (a header line, labels in the first column, values in the last) whose
next values are forecast; for a frame forecaster, a folder of frames whose next frames are drawn. Both commands
also take the ``.ckpt`` of a ``zoo fit`` run instead of an entry (a model fine-tuned or trained on your data).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torchvision.transforms import v2
from torchvision.utils import save_image

from datamodules._paths import TEXT_ENCODING
from datamodules.airline import read_series_csv
from zoo import hub, registry
from zoo.errors import ZooError
from zoo.manifest import Manifest
from zoo.models.base import Classifier
from zoo.preprocessing import DamagedImageError, image_files, image_transforms, read_image


class PredictError(ZooError, ValueError):
    """An entry that cannot classify image files, or bad ``zoo predict`` / ``zoo sample`` options."""


Run = tuple[torch.nn.Module, Any]  # what hub.load_run gives: the model and the datamodule of a `zoo fit` checkpoint


def image_classifier(entry_name: str, run: Optional[Run] = None) -> tuple[torch.nn.Module, list[str], dict[str, Any]]:
    """The shipped model of an image classifier with its manifest's class names and preprocessing (or, for a
    ``.ckpt`` file of a ``zoo fit`` run, the trained model with its datamodule's; ``run``: that checkpoint, already
    loaded); an error names the image classifiers."""
    if entry_name.endswith(".ckpt"):
        model, datamodule = run or hub.load_run(entry_name)
        if not isinstance(model, Classifier):
            sample = f"; draw samples with `zoo sample {entry_name}`" if callable(getattr(model, "sample", None)) else ""
            raise PredictError(f"{entry_name} is a run of {type(model).__name__}, not of an image classifier, tagger "
                               f"or forecaster: `zoo predict <run>.ckpt` takes runs of those{sample}")
        spec, names = getattr(datamodule, "input_spec", None), getattr(datamodule, "class_names", None)
        if not callable(spec) or not names:
            raise PredictError(f"{entry_name} was trained on {type(datamodule).__name__}, which records no image "
                               f"preprocessing or class names, and its model neither tags nor forecasts: `zoo "
                               f"predict <run>.ckpt` takes runs of image classifiers, taggers and forecasters")
        return model, list(names), spec()
    manifest = registry.get(entry_name).manifest()
    if not classifies_images(manifest):
        usable = [name for name in registry.list_models(shipped=True) if predicts_files(name)]
        why = "ships no weights" if manifest is None else "is not an image classifier, tagger or forecaster"
        raise PredictError(f"{entry_name!r} {why}; `zoo predict ENTRY PATH` takes one of: {', '.join(usable)}")
    return hub.load(entry_name), manifest.classes, manifest.preprocessing


def predicts_files(entry_name: str) -> bool:
    """Whether a shipped entry takes ``zoo predict ENTRY PATH``: an image classifier, a tagger or a forecaster."""
    manifest = registry.get(entry_name).manifest()
    return classifies_images(manifest) or (manifest is not None and manifest.vocabularies is not None) or \
        _has(entry_name, "forecast") or _has(entry_name, "predict_frames")


def classifies_images(manifest: Optional[Manifest]) -> bool:
    """Whether a shipped manifest is an image classifier's: image preprocessing, class names, whole weights."""
    return manifest is not None and manifest.preprocessing is not None and manifest.classes is not None and \
        not manifest.weights_hold_only


def sentence_tagger(entry_name: str, run: Optional[Run] = None
                    ) -> Optional[tuple[torch.nn.Module, list[str], Callable[..., Any]]]:
    """The model, tag names and sentence encoder of a tagger (a shipped entry whose manifest has ``vocabularies``,
    or the ``.ckpt`` of a ``zoo fit`` run of one, ``run`` when already loaded); ``None`` for any other entry or
    checkpoint."""
    if entry_name.endswith(".ckpt"):
        model, datamodule = run or hub.load_run(entry_name)
        if not getattr(datamodule, "vocabularies", None):
            return None
        return model, list(datamodule.class_names), datamodule.sentence_encoder()
    manifest = registry.get(entry_name).manifest()
    if manifest is None or manifest.vocabularies is None:
        return None
    return hub.load(entry_name), list(manifest.classes or []), hub.transforms(entry_name)


def tag_text_files(tagger: tuple[torch.nn.Module, list[str], Callable[..., Any]], paths: list[str],
                   as_json: bool = False, batch_size: int = 64) -> int:
    """Print one line per sentence (a non-empty line of a UTF-8 text file, words separated by spaces):
    ``path:line<TAB>word/TAG word/TAG ...`` (``--json``: ``{"path", "line", "words", "tags"}``). A file that does not
    exist or is not UTF-8 is reported on stderr and the others are still tagged; the exit status is then 1."""
    model, tags, encode = tagger
    sentences, failed = [], 0
    for name in paths:
        try:
            text = Path(name).read_text(encoding=TEXT_ENCODING)
        except (OSError, UnicodeDecodeError) as err:
            print(f"zoo predict: skipped: cannot read {name} ({type(err).__name__}: {err}); give UTF-8 text files, "
                  f"one sentence per line", file=sys.stderr)
            failed += 1
            continue
        sentences += [(name, number, line.split()) for number, line in enumerate(text.splitlines(), 1) if line.split()]
    if not sentences:
        raise PredictError(f"no sentence to tag in {', '.join(paths)}: give UTF-8 text files with one sentence per "
                           f"line, words separated by spaces")
    for start in range(0, len(sentences), batch_size):
        batch = sentences[start:start + batch_size]
        with torch.inference_mode():
            predicted = model(encode([words for _, _, words in batch])).argmax(dim=1).tolist()
        lines = []
        for (name, number, words), ids in zip(batch, predicted):
            names = [tags[i] for i in ids[:len(words)]]
            lines.append(json.dumps({"path": name, "line": number, "words": words, "tags": names}) if as_json else
                         f"{name}:{number}\t" + " ".join(f"{w}/{t}" for w, t in zip(words, names)))
        print("\n".join(lines), flush=True)
    return 1 if failed else 0


def model_with(entry_name: str, method: str, run: Optional[Run] = None) -> Optional[torch.nn.Module]:
    """The model of a shipped entry, or of the ``.ckpt`` of a ``zoo fit`` run (``run`` when already loaded), when it
    has ``method`` (``forecast``: a series forecaster; ``predict_frames``: a frame forecaster); else ``None``."""
    if entry_name.endswith(".ckpt"):
        model = (run or hub.load_run(entry_name))[0]
        return model if callable(getattr(model, method, None)) else None
    return hub.load(entry_name) if _has(entry_name, method) else None


def forecast_csv_files(model: torch.nn.Module, paths: list[str], steps: int, as_json: bool = False) -> int:
    """Print the ``steps`` values that follow each CSV series, one line each: ``path<TAB>label<TAB>value``
    (``--json``: one object per file). Labels continue a last label of the form ``YYYY-MM`` month by month, else
    count ``+1``, ``+2``, ... A file that cannot be read or parsed is reported on stderr and the others are still
    forecast; the exit status is then 1."""
    if not 1 <= steps <= 10_000:
        raise PredictError(f"--steps must be between 1 and 10,000, got {steps}")
    failed = 0
    for name in paths:
        try:
            labels, series = read_series(name)
            forecast = model.forecast(series, steps).tolist()
        except (PredictError, ValueError) as err:
            print(f"zoo predict: skipped: {err if isinstance(err, PredictError) else f'{name}: {err}'}",
                  file=sys.stderr)
            failed += 1
            continue
        note_other_scale(model, name, series)
        next_labels = following_labels(labels[-1], steps)
        if as_json:
            print(json.dumps({"path": name, "after": labels[-1], "labels": next_labels,
                              "forecast": [round(value, 6) for value in forecast]}), flush=True)
        else:
            print("\n".join(f"{name}\t{label}\t{value:.6g}" for label, value in zip(next_labels, forecast)), flush=True)
    if failed == len(paths):
        raise PredictError(f"none of the {len(paths)} series could be forecast (each is named above); give CSV files "
                           f"with a header line, labels in the first column and at least {model.hparams.look_back} "
                           f"values in the last")
    return 1 if failed else 0


def read_series(name: str) -> tuple[list[str], torch.Tensor]:
    """The labels and values of the CSV series ``name``; ``PredictError`` naming the file and the fix otherwise."""
    try:
        text = Path(name).read_text(encoding=TEXT_ENCODING)
    except (OSError, UnicodeDecodeError) as err:
        raise PredictError(f"cannot read {name} ({type(err).__name__}: {err}); give UTF-8 CSV files") from err
    try:
        return read_series_csv(text, name, otherwise="")
    except ValueError as err:
        raise PredictError(str(err)) from err


def note_other_scale(model: torch.nn.Module, name: str, series: torch.Tensor) -> None:
    """Warn on stderr when a series spans a range far (over 3x) from the one the model was trained on: its weights
    read values divided by that training range (``scale``), so its forecasts of such a series are unreliable."""
    span, scale = float(series.max() - series.min()), float(model.scale)
    if not scale / 3 <= span <= scale * 3:
        print(f"zoo predict: note: {name} spans {span:g} (max - min), the series the model was trained on spanned "
              f"{scale:g}: forecasts of a series of another size are unreliable; train a forecaster on yours "
              f"(e.g. `zoo fit -c lstm_airline --data.init_args.csv_path {name}`) and predict with that run's "
              f"checkpoint", file=sys.stderr)


def following_labels(last: str, steps: int) -> list[str]:
    """The ``steps`` labels after ``last``: the next months when ``last`` is ``YYYY-MM``, else ``+1 .. +steps``."""
    match = re.fullmatch(r"(\d{4})-(\d{1,2})", last)
    if match is None or not 1 <= int(match[2]) <= 12:
        return [f"+{step}" for step in range(1, steps + 1)]
    month = int(match[1]) * 12 + int(match[2]) - 1
    return [f"{(month + step) // 12:04d}-{(month + step) % 12 + 1:02d}" for step in range(1, steps + 1)]


def forecast_frame_files(model: torch.nn.Module, paths: list[str], out: str, as_json: bool = False) -> int:
    """Forecast the frames that follow the last ``frames_in`` image files of ``paths`` (in name order, numbers
    compared as numbers) and write the input frames (first row) and the forecast frames (second row) as the PNG
    strip ``out``. Each frame is read as ``in_channels`` channels, centre-cropped to a square and resized to
    ``image_size`` pixels; like Moving MNIST, bright objects on a dark background."""
    hp = model.hparams
    files = sorted(image_files(paths), key=lambda path: [int(part) if part.isdigit() else part
                                                         for part in re.split(r"(\d+)", str(path))])
    if len(files) < hp.frames_in:
        raise PredictError(f"{type(model).__name__} forecasts from {hp.frames_in} frames, got {len(files)} image "
                           f"file(s) in {', '.join(paths)}; give a folder of at least {hp.frames_in} frames")
    used = files[-hp.frames_in:]
    inputs = torch.stack([frame_input(read_image(path, hp.in_channels), hp.image_size) for path in used])
    with torch.inference_mode():
        forecast = model.predict_frames(inputs[None])[0]
    columns = max(len(inputs), len(forecast))
    rows = [torch.cat([frames, frames.new_zeros(columns - len(frames), *frames.shape[1:])]) for frames in
            (inputs, forecast)]
    path = save_png(torch.cat(rows), out, nrow=columns)
    if as_json:
        print(json.dumps({"path": str(path), "input_frames": [str(f) for f in used], "forecast_frames": len(forecast)}))
    else:
        print(f"wrote {path}: the {len(used)} input frames {used[0]} .. {used[-1]} (first row) and the "
              f"{len(forecast)} forecast frames (second row)")
    return 0


def frame_input(image: torch.Tensor, size: int) -> torch.Tensor:
    """A uint8 frame ``(C, H, W)`` centre-cropped to a square, resized to ``size`` and scaled to [0, 1]."""
    square = v2.functional.center_crop(image, [min(image.shape[-2:])] * 2)
    return v2.functional.to_dtype(v2.functional.resize(square, [size, size], antialias=True), torch.float32,
                                  scale=True)


def predict_files(entry_name: str, paths: list[str], topk: int = 1, as_json: bool = False,
                  batch_size: int = 64, steps: int = 12, out: str = "forecast.png") -> int:
    """Print one line per image file: ``path<TAB>class<TAB>probability`` (``--topk``: K class/probability pairs;
    ``--json``: one object per line); for a tagger, one line per sentence of the text files
    (:func:`tag_text_files`); for a series forecaster, the ``steps`` values after each CSV series
    (:func:`forecast_csv_files`); for a frame forecaster, a PNG strip ``out`` of the frames after the image files
    (:func:`forecast_frame_files`). A file that cannot be read is reported on stderr and the others are still
    classified; the exit status is then 1."""
    if topk < 1 or batch_size < 1:
        raise PredictError(f"--topk and --batch_size must be positive, got {topk} and {batch_size}")
    run = hub.load_run(entry_name) if entry_name.endswith(".ckpt") else None
    tagger = sentence_tagger(entry_name, run)
    if tagger is not None:
        return tag_text_files(tagger, paths, as_json=as_json, batch_size=batch_size)
    forecaster = model_with(entry_name, "forecast", run)
    if forecaster is not None:
        return forecast_csv_files(forecaster, paths, steps, as_json=as_json)
    forecaster = model_with(entry_name, "predict_frames", run)
    if forecaster is not None:
        return forecast_frame_files(forecaster, paths, out, as_json=as_json)
    model, classes, spec = image_classifier(entry_name, run)
    topk = min(topk, len(classes))
    transform = image_transforms(spec)
    files = image_files(paths)
    failed = 0
    for start in range(0, len(files), batch_size):
        batch_files, images = [], []
        for path in files[start:start + batch_size]:
            try:
                images.append(read_image(path, spec["channels"]))
                batch_files.append(path)
            except DamagedImageError as err:
                print(f"zoo predict: skipped: {err}", file=sys.stderr)
                failed += 1
        if not images:
            continue
        with torch.inference_mode():
            probabilities = model(prepare_batch(images, transform)).softmax(dim=-1)
        top_p, top_i = probabilities.topk(topk, dim=-1)
        lines = []
        for path, ps, ids in zip(batch_files, top_p.tolist(), top_i.tolist()):
            if as_json:
                lines.append(json.dumps({"path": str(path), "top": [
                    {"class": classes[i], "index": i, "probability": round(p, 6)} for p, i in zip(ps, ids)]}))
            else:
                lines.append("\t".join([str(path), *(f"{classes[i]}\t{p:.4f}" for p, i in zip(ps, ids))]))
        print("\n".join(lines), flush=True)
    if failed == len(files):
        raise PredictError(f"none of the {len(files)} image file(s) could be read (each is named above); give PNG "
                           f"or JPEG files")
    return 1 if failed else 0


def prepare_batch(images: list[torch.Tensor], transform: torch.nn.Module) -> torch.Tensor:
    """The model input of decoded images: images of one size are transformed together as one stacked tensor (the
    transforms take ``(N, C, H, W)``), so a folder of same-size photos costs one pass per batch."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(tuple(image.shape), []).append(i)
    prepared: list[torch.Tensor] = [torch.empty(0)] * len(images)
    for indices in by_shape.values():
        for i, x in zip(indices, transform(torch.stack([images[i] for i in indices]))):
            prepared[i] = x
    return torch.stack(prepared)


def sample_grid(entry_name: str, n: int, out: str, labels: Optional[list[int]] = None, seed: int = 0,
                run: Optional[Run] = None) -> Path:
    """Draw ``n`` samples of a generative entry's shipped weights (or of the ``.ckpt`` of a ``zoo fit`` run, ``run``
    when already loaded) into the PNG grid ``out`` (written atomically)."""
    if n < 1 or n > 10_000:
        raise PredictError(f"-n must be between 1 and 10,000, got {n}")
    if entry_name.endswith(".ckpt"):
        run = run or hub.load_run(entry_name)
    model = run[0] if run is not None else hub.load(entry_name)
    if not callable(getattr(model, "sample", None)):
        raise PredictError(f"{entry_name!r} is not a generative entry; `zoo sample` takes one of: "
                           f"{', '.join(name for name in registry.list_models(shipped=True) if _has(name, 'sample'))}"
                           f" (or the .ckpt of a `zoo fit` run of one)")
    conditional = bool(getattr(model.hparams, "conditional", False))
    if conditional and not labels:
        labels = list(range(model.hparams.num_classes))
    if labels and not conditional:
        raise PredictError(f"{entry_name} is unconditional: drop --labels")
    names = getattr(run[1], "class_names", None) if run is not None else None
    if labels and names and not all(0 <= label < len(names) for label in labels):
        raise PredictError(f"{entry_name} was trained on {len(names)} classes ({', '.join(map(str, names[:10]))}"
                           f"{', ...' if len(names) > 10 else ''}): --labels takes 0 to {len(names) - 1}, got "
                           f"{' '.join(map(str, labels))}")
    label_tensor = torch.tensor((labels * n)[:n]) if labels else None
    images = model.sample(n, labels=label_tensor, generator=torch.Generator().manual_seed(seed))
    return save_png(images, out, nrow=max(1, round(n ** 0.5)) if not labels else len(set(labels)))


def save_png(images: torch.Tensor, out: str, nrow: int) -> Path:
    """Images ``(N, C, H, W)`` in [0, 1] as one PNG grid of ``nrow`` columns at ``out``, written atomically; missing
    folders are created (as ``zoo export --out_dir`` does), and one that cannot be, or cannot be written, is named."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise PredictError(f"--out must name a .png file, got {out}")
    partial = path.with_name(f".{path.name}.partial.png")
    doing = f"create the folder {path.parent}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        doing = f"write {path}"
        save_image(images, partial, nrow=nrow, padding=2)
        os.replace(partial, path)
    except OSError as err:
        raise PredictError(f"--out {out}: cannot {doing} ({type(err).__name__}: {err.strerror or err}); pass --out "
                           f"in a folder you can write") from None
    finally:
        if path.parent.is_dir():
            partial.unlink(missing_ok=True)
    return path


def continue_prompt(entry_name: str, prompt: Optional[str], num_words: int, temperature: float = 0.0,
                    seed: int = 0, run: Optional[Run] = None) -> tuple[str, list[str]]:
    """``prompt`` continued by ``num_words`` words of an n-gram entry's shipped weights (or of the ``.ckpt`` of a
    ``zoo fit`` run, ``run`` when already loaded; ``temperature`` 0: the most probable word, as the book; > 0:
    sampled with ``seed``), and the prompt's words outside the vocabulary (read as ``<unk>``)."""
    if entry_name.endswith(".ckpt"):
        run = run or hub.load_run(entry_name)
    if not continues_text(entry_name, run):
        raise PredictError(f"{entry_name!r} does not continue text; `zoo sample --prompt` takes one of: "
                           f"{', '.join(name for name in registry.list_models(shipped=True) if continues_text(name))}"
                           f" (or the .ckpt of a `zoo fit` run of one)")
    if not prompt:
        raise PredictError(f"{entry_name} continues a prompt: give --prompt 'two words' (or more)")
    if num_words < 1 or num_words > 10_000 or temperature < 0:
        raise PredictError(f"-n must be between 1 and 10,000 words (got {num_words}) and --temperature 0 or more "
                           f"(got {temperature})")
    model, datamodule = run or (hub.load(entry_name), hub.build_datamodule(entry_name))
    ids, unknown = datamodule.encode_prompt(prompt)
    try:
        continuation = model.continue_words(ids, num_words, temperature=temperature,
                                            generator=torch.Generator().manual_seed(seed))
    except ValueError as err:  # a prompt shorter than the model's context
        raise PredictError(f"--prompt {prompt!r}: {err}") from err
    return " ".join(datamodule.vocab.decode(ids + continuation)), unknown


def continues_text(entry_name: str, run: Optional[Run] = None) -> bool:
    """Whether a shipped entry's model (or a loaded ``run``'s) continues a word prompt (has ``continue_words``: the
    n-gram models)."""
    if run is not None:
        return callable(getattr(run[0], "continue_words", None))
    return _has(entry_name, "continue_words")


def _has(entry_name: str, method: str) -> bool:
    """Whether a shipped entry's model class has ``method`` (``sample``: it draws samples)."""
    manifest = registry.get(entry_name).manifest()
    return manifest is not None and callable(getattr(hub.import_trusted(manifest.model_class, object), method, None))

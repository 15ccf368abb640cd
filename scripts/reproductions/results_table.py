"""Print a Markdown table of every shipped entry's manifest metrics (the README's results table comes from it).

    python -m scripts.reproductions.results_table
"""

from __future__ import annotations

from zoo import registry


def is_accuracy(key: str) -> bool:
    """Whether metric ``key`` (e.g. ``test/acc``) is an accuracy, shown in percent."""
    return "acc" in key.rsplit("/", 1)[-1]


def format_value(key: str, value: float) -> str:
    if is_accuracy(key):
        return f"{100 * value:.2f} %"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"


def main() -> None:
    print("| entry | dataset (training images) | test metrics | epochs to the best checkpoint |")
    print("|---|---|---|---|")
    for name, entry in registry.entries().items():
        manifest = entry.manifest()
        if manifest is None:
            continue
        data = manifest.data
        size = data.get("train_size")
        dataset = f"{data.get('dataset', '?')}" + (f" ({size:,})" if isinstance(size, int) else "")
        metrics = ", ".join(
            f"{k}={format_value(k, v)}" for k, v in manifest.metrics.items() if not k.endswith("/loss")
        )
        trained = manifest.trained
        print(f"| `{name}` | {dataset} | {metrics} | {trained.get('epochs', '?')} |")


if __name__ == "__main__":
    main()

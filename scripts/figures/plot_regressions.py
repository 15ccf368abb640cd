"""Plot the shipped chapter-3 regressions: the fitted line over the book's points, the fitted cubic against the
true one, and the logistic decision boundary over the two classes.

    python -m scripts.figures.plot_regressions --out docs      # writes docs/regression_{linear,polynomial,logistic}.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import zoo  # noqa: E402
from datamodules import BookPointsDataModule, PolynomialDataModule, TwoBlobsDataModule  # noqa: E402
from datamodules.toy_regression import polynomial_features  # noqa: E402


def plot_linear(out: Path) -> Path:
    model, data = zoo.load("linear_regression_book"), BookPointsDataModule()
    b, w = model.coefficients().tolist()
    design = torch.cat([torch.ones(len(data.x), 1), data.x], 1).double()
    b_ls, w_ls = torch.linalg.lstsq(design, data.y.double().unsqueeze(1)).solution.flatten().tolist()
    grid = torch.linspace(data.x.min() - 0.5, data.x.max() + 0.5, 50)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(data.x.flatten(), data.y, color="tab:red", label="the book's 15 points")
    ax.plot(grid, b + w * grid, label=f"fitted: y = {w:.4f} x + {b:.4f}")
    ax.plot(grid, b_ls + w_ls * grid, "k--", lw=0.8, label=f"least squares: y = {w_ls:.4f} x + {b_ls:.4f}")
    ax.set(xlabel="x", ylabel="y", title="linear_regression_book")
    ax.legend(fontsize=8)
    return save(fig, out / "regression_linear.png")


def plot_polynomial(out: Path) -> Path:
    model, data = zoo.load("polynomial_regression_book"), PolynomialDataModule()
    grid = torch.linspace(-2, 2, 100)
    with torch.no_grad():
        fitted = model(polynomial_features(grid, data.degree))
    coefficients = ", ".join(f"{c:.3f}" for c in model.coefficients().tolist())
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(grid, data.target(grid), "k", lw=3, alpha=0.3, label="true: 0.9 + 0.5x + 3x² + 2.4x³")
    ax.plot(grid, fitted, "tab:blue", label=f"fitted: ({coefficients})")
    ax.set(xlabel="x", ylabel="y", title="polynomial_regression_book")
    ax.legend(fontsize=8)
    return save(fig, out / "regression_polynomial.png")


def plot_logistic(out: Path) -> Path:
    model, data = zoo.load("logistic_regression_blobs"), TwoBlobsDataModule()
    (w1, w2), b = model.network.weight.detach()[0].tolist(), float(model.network.bias.detach())
    with torch.no_grad():
        accuracy = float((model(data.x).argmax(1) == data.y).float().mean())
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, color in ((0, "tab:blue"), (1, "tab:red")):
        points = data.x[data.y == label]
        ax.scatter(points[:, 0], points[:, 1], color=color, s=14, label=f"class {label}")
    x1 = torch.linspace(data.x[:, 0].min(), data.x[:, 0].max(), 10)
    ax.plot(x1, -(b + w1 * x1) / w2, "k", label=f"p = 0.5 (accuracy {accuracy:.0%}; "
                                               f"best line {data.best_linear_accuracy():.0%})")
    ax.set(xlabel="x₁", ylabel="x₂", title="logistic_regression_blobs", ylim=(data.x[:, 1].min() - 0.5,
                                                                           data.x[:, 1].max() + 0.5))
    ax.legend(fontsize=8)
    return save(fig, out / "regression_logistic.png")


def save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs", help="directory for the three PNG files")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    for plot in (plot_linear, plot_polynomial, plot_logistic):
        print(f"wrote {plot(out)}")


if __name__ == "__main__":
    main()

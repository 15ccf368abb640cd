"""Chapter-3 regressions: the regression base, the embedded and generated sets, the shipped fits and their plots."""

from __future__ import annotations

import pytest
import torch

import zoo
from datamodules import BookPointsDataModule, PolynomialDataModule, TwoBlobsDataModule
from datamodules.toy_regression import BOOK_POLYNOMIAL, best_linear_accuracy, polynomial_features
from tests.helpers import ok, run_script
from zoo.models import LinearRegression, LogisticRegression, PolynomialRegression


def test_shipped_linear_fit_is_the_least_squares_line():
    model, data = zoo.load("linear_regression_book"), BookPointsDataModule()
    design = torch.cat([torch.ones(15, 1), data.x], 1).double()
    least_squares = torch.linalg.lstsq(design, data.y.double().unsqueeze(1)).solution.flatten()
    assert torch.allclose(model.coefficients().double(), least_squares, atol=1e-3)


def test_shipped_polynomial_recovers_the_books_coefficients():
    coefficients = zoo.load("polynomial_regression_book").coefficients()
    assert torch.allclose(coefficients, torch.tensor(BOOK_POLYNOMIAL), atol=0.05), coefficients


def test_shipped_logistic_regression_against_the_best_straight_boundary():
    model, data = zoo.load("logistic_regression_blobs"), TwoBlobsDataModule()
    with torch.no_grad():
        accuracy = float((model(data.x).argmax(1) == data.y).float().mean())
    best = data.best_linear_accuracy()
    assert 0.9 <= accuracy <= best + 1e-9  # no line beats the best line
    assert torch.allclose(model.probability(data.x), model(data.x).softmax(1)[:, 1])


def test_logistic_cross_entropy_is_the_binary_cross_entropy():
    model = LogisticRegression(in_features=2)
    x, y = torch.randn(9, 2), torch.randint(0, 2, (9,))
    bce = torch.nn.functional.binary_cross_entropy(model.probability(x), y.float())
    assert torch.allclose(model.loss(model(x), y), bce, atol=1e-6)


def test_best_linear_accuracy_on_separable_and_hand_checked_points():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 3.0], [4.0, 3.0], [3.0, 4.0]])
    assert best_linear_accuracy(x, torch.tensor([0, 0, 0, 1, 1, 1])) == 1.0
    xor = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert best_linear_accuracy(xor, torch.tensor([0, 0, 1, 1])) == 0.75  # XOR: no line gets all four


def test_polynomial_batches_are_fresh_seeded_draws_with_the_books_features():
    data = PolynomialDataModule(batch_size=32, seed=3)
    x0, y0 = data.train_batch(0)
    x1, _ = data.train_batch(1)
    assert x0.shape == (32, 3) and not torch.equal(x0, x1)
    assert torch.equal(data.train_batch(0)[0], x0)
    assert torch.allclose(x0[:, 1], x0[:, 0] ** 2) and torch.allclose(x0[:, 2], x0[:, 0] ** 3)
    assert torch.allclose(y0, 0.9 + 0.5 * x0[:, 0] + 3 * x0[:, 1] + 2.4 * x0[:, 2])
    assert torch.equal(polynomial_features(torch.tensor([2.0]), 3), torch.tensor([[2.0, 4.0, 8.0]]))


def test_regression_base_checks_shapes_and_logs_rmse():
    model = PolynomialRegression(degree=3)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3\), got \(4, 2\)"):
        model(torch.randn(4, 2))
    assert LinearRegression(in_features=2)(torch.randn(5, 2)).shape == (5,)


def test_every_parameter_gets_a_gradient():
    for model, x, y in ((LinearRegression(), torch.randn(4, 1), torch.randn(4)),
                        (PolynomialRegression(), torch.randn(4, 3), torch.randn(4)),
                        (LogisticRegression(), torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))):
        model.loss(model(x), y).backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_plot_script_writes_the_three_pictures(tmp_path):
    ok(run_script("figures.plot_regressions", "--out", str(tmp_path)))
    for name in ("linear", "polynomial", "logistic"):
        assert (tmp_path / f"regression_{name}.png").stat().st_size > 5000

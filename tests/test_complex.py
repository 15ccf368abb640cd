"""Deep complex networks: complex layers against PyTorch's complex arithmetic, batch norm whitening, activations,
dropout, Rayleigh initialisation, ComplexNet / RealNet training (also in bf16-mixed) and checkpoints."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from conftest import run_zoo, untrained_model_of
from zoo import registry
from zoo.layers import (
    ComplexBatchNorm1d,
    ComplexBatchNorm2d,
    ComplexConv2d,
    ComplexDropout,
    ComplexLinear,
    ComplexMagnitude,
    CReLU,
    LearnedImaginaryInput,
    ModReLU,
    ZReLU,
    complex_glorot_init_,
    complex_he_init_,
)
from zoo.models import ComplexNet, RealNet

COMPLEX_ENTRIES = [f"{net}_{data}" for net in ("complex_net", "real_net") for data in ("fashion_mnist", "mnist", "mnist5k")]


def crandn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


def with_random_bias(layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        layer.bias.copy_(crandn(*layer.bias.shape, seed=9))
    return layer


def real_count(module: nn.Module) -> int:
    """Real numbers in the parameters (a complex entry counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())


# ------------------------------------------------------------------------------------------------ linear layers
@pytest.mark.parametrize("method", ["block", "gauss"])
@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_complex_conv2d_equals_pytorch_complex_convolution(method, stride, padding, dilation):
    conv = with_random_bias(ComplexConv2d(3, 5, 3, stride=stride, padding=padding, dilation=dilation, method=method))
    z = crandn(2, 3, 9, 9)
    expected = F.conv2d(z, conv.weight, conv.bias, stride=stride, padding=padding, dilation=dilation)
    out = conv(z)
    assert out.dtype == torch.complex64
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["block", "gauss"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_complex_conv2d_gradients_equal_pytorch_complex_convolution_in_either_memory_format(method, memory_format):
    # on the CPU the layer convolves in channels-last order; values and gradients must not depend on the input's
    conv = with_random_bias(ComplexConv2d(3, 5, 3, stride=2, padding=1, method=method))
    z = crandn(2, 3, 9, 9).contiguous(memory_format=memory_format).requires_grad_()
    upstream = crandn(2, 5, 5, 5, seed=3)
    conv(z).backward(upstream)
    grads = [z.grad, conv.weight.grad, conv.bias.grad]
    z_ref, weight, bias = (t.detach().clone().requires_grad_() for t in (z, conv.weight, conv.bias))
    F.conv2d(z_ref, weight, bias, stride=2, padding=1).backward(upstream)
    for grad, expected in zip(grads, (z_ref.grad, weight.grad, bias.grad)):
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_planar_parts_are_dense_in_the_inputs_memory_order(memory_format):
    from zoo.layers.complex import planar_parts

    z = crandn(2, 3, 4, 5).contiguous(memory_format=memory_format)
    real, imag = planar_parts(z)
    assert torch.equal(real, z.real) and torch.equal(imag, z.imag)
    assert real.is_contiguous(memory_format=memory_format) and imag.is_contiguous(memory_format=memory_format)


def test_auto_method_picks_block_for_small_and_gauss_for_large_convolutions():
    from zoo.layers.complex import GAUSS_MIN_MACS

    small = ComplexConv2d(20, 50, 5, stride=2)  # ComplexNet's second convolution: 25.6 M MACs at batch 64
    assert small.method == "auto"
    assert small.product_method(torch.empty(64, 20, 12, 12, dtype=torch.complex64)) == "block"
    large = ComplexConv2d(64, 64, 3, padding=1)  # 604 M MACs at 16 x 32 x 32
    assert large.product_method(torch.empty(16, 64, 32, 32, dtype=torch.complex64)) == "gauss"
    # exactly at the threshold: 1 x 1 convolution, macs = n * c_out * h * w * c_in
    side = int(math.isqrt(GAUSS_MIN_MACS // (64 * 64)))
    pointwise = ComplexConv2d(64, 64, 1)
    at = torch.empty(1, 64, side, side, dtype=torch.complex64)
    expected = "gauss" if 64 * 64 * side * side >= GAUSS_MIN_MACS else "block"
    assert pointwise.product_method(at) == expected
    with pytest.raises(ValueError, match="method"):
        ComplexConv2d(6, 2, 3, method="native")  # native is a linear-layer option only


def test_linear_auto_method_is_native_complex64_outside_autocast_and_gauss_under_it():
    linear = ComplexLinear(6, 2)
    z = crandn(3, 6)
    assert linear.method == "auto" and linear.product_method(z) == "native"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear.product_method(z) == "gauss"
    assert ComplexLinear(6, 2, method="block").product_method(z) == "block"


def test_auto_method_output_equals_pytorch_complex_convolution():
    conv = with_random_bias(ComplexConv2d(64, 8, 3, padding=1))
    for z, method in ((crandn(1, 64, 6, 6), "block"), (crandn(4, 64, 64, 64, seed=1), "gauss")):
        assert conv.product_method(z) == method
        torch.testing.assert_close(conv(z), F.conv2d(z, conv.weight, conv.bias, padding=1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["auto", "block", "gauss", "native"])
def test_complex_linear_values_and_gradients_equal_complex_matmul(method):
    linear = with_random_bias(ComplexLinear(7, 4, method=method))
    z = crandn(3, 2, 7).requires_grad_()  # extra leading dimension
    upstream = crandn(3, 2, 4, seed=3)
    out = linear(z)
    out.backward(upstream)
    grads = [z.grad, linear.weight.grad, linear.bias.grad]
    z_ref, weight, bias = (t.detach().clone().requires_grad_() for t in (z, linear.weight, linear.bias))
    expected = z_ref @ weight.T + bias
    expected.backward(upstream)
    assert out.shape == (3, 2, 4) and out.dtype == torch.complex64
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for grad, expected_grad in zip(grads, (z_ref.grad, weight.grad, bias.grad)):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape, dim", [((3, 5), 1), ((2, 5, 4, 3), 1), ((2, 3, 5), 2)])
def test_interleaved_parts_round_trip_and_are_views_when_channels_are_innermost(shape, dim):
    from zoo.layers.complex import deinterleaved, interleaved

    z = crandn(*shape)
    real = interleaved(z, dim)
    expected_shape = list(shape)
    expected_shape[dim] *= 2
    assert list(real.shape) == expected_shape
    assert torch.equal(real.select(dim, 2), z.real.select(dim, 1))  # channel 1's real part is real channel 2
    assert torch.equal(real.select(dim, 3), z.imag.select(dim, 1))
    assert torch.equal(deinterleaved(real, dim), z)
    channels_innermost = z.movedim(dim, -1).contiguous().movedim(-1, dim)
    view = interleaved(channels_innermost, dim)
    assert view.data_ptr() == channels_innermost.data_ptr() and view.stride(dim) == 1
    assert deinterleaved(view, dim).data_ptr() == channels_innermost.data_ptr()


def test_complex_from_parts_equals_torch_complex_and_passes_dense_gradients():
    from zoo.layers.complex import complex_from_parts

    real, imag = (torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(s)).requires_grad_() for s in (0, 1))
    out = complex_from_parts(real, imag)
    assert torch.equal(out, torch.complex(real, imag))
    upstream = crandn(2, 3, 4, seed=2)
    out.backward(upstream)
    assert torch.equal(real.grad, upstream.real) and torch.equal(imag.grad, upstream.imag)
    assert real.grad.is_contiguous() and imag.grad.is_contiguous()


def test_single_channel_conv_equals_a_plain_convolution_with_the_same_parameters():
    from zoo.layers.complex import SingleChannelConv2d

    torch.manual_seed(0)
    fast, plain = SingleChannelConv2d(3, padding=1), nn.Conv2d(1, 1, 3, padding=1)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(5, 1, 7, 6)
    upstream = torch.randn(5, 1, 7, 6)
    outputs = []
    for conv in (fast, plain):
        image = x.clone().requires_grad_()
        out = conv(image)
        out.backward(upstream)
        outputs.append((out, image.grad, conv.weight.grad, conv.bias.grad))
    for got, expected in zip(*outputs):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer", [ComplexConv2d(2, 3, 3), ComplexLinear(2, 3)])
def test_one_complex_bias_is_added_once(layer):
    names = {name: p.dtype for name, p in layer.named_parameters()}
    assert names == {"weight": torch.complex64, "bias": torch.complex64}
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([1 + 2j, -3 + 0.5j, 0.25 - 1j]))
    z = crandn(1, 2, 4, 4) if isinstance(layer, ComplexConv2d) else crandn(1, 2)
    out = layer(z)
    # two real sub-layers with their own biases would give (b_r - b_i) + i(b_r + b_i) = -1 + 3i for the first
    assert torch.all(out[0, 0] == 1 + 2j)


def test_layers_reject_real_input_and_wrong_channels():
    conv = ComplexConv2d(2, 3, 3)
    with pytest.raises(TypeError, match="complex"):
        conv(torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match="expects 2 channels"):
        conv(crandn(1, 4, 5, 5))
    with pytest.raises(ValueError, match="4-d"):
        conv(crandn(2, 5, 5))
    with pytest.raises(ValueError, match="expects 6 channels"):
        ComplexLinear(6, 2)(crandn(3, 5))
    with pytest.raises(ValueError, match="method"):
        ComplexLinear(6, 2, method="fast")
    with pytest.raises(ValueError, match="real image"):
        LearnedImaginaryInput(1)(crandn(1, 1, 4, 4))


def test_bf16_autocast_computes_the_products_in_bfloat16_and_returns_complex64():
    conv, linear = ComplexConv2d(4, 6, 3), ComplexLinear(6, 5)
    z = crandn(2, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_conv = conv(z)
        low_linear = linear(crandn(2, 6, seed=1))
    assert low_conv.dtype == low_linear.dtype == torch.complex64
    exact_conv, exact_linear = conv(z), linear(crandn(2, 6, seed=1))
    for low, exact in ((low_conv, exact_conv), (low_linear, exact_linear)):
        error = (low - exact).abs().max().item()
        assert 0 < error < 0.05 * exact.abs().max().item()  # bfloat16 rounding: not exact, but close


# ------------------------------------------------------------------------------------------------ batch norm
def correlated_complex(n: int, channels: int, *spatial: int, seed: int = 0) -> torch.Tensor:
    """Complex data with a non-zero mean and correlated, unequal real/imaginary parts per channel."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, channels, *spatial, generator=g)
    b = torch.randn(n, channels, *spatial, generator=g)
    scale = torch.arange(1, channels + 1, dtype=torch.float32).view(1, -1, *([1] * len(spatial)))
    return torch.complex(3 * scale * a + 2.0, (a + 0.5 * b) * scale - 1.0)


def channel_moments(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean (C, 2) and 2x2 covariance (C, 2, 2) of (real, imaginary)."""
    parts = torch.view_as_real(z).movedim(1, 0).reshape(z.shape[1], -1, 2)
    mean = parts.mean(dim=1)
    centred = parts - mean[:, None]
    return mean, centred.transpose(1, 2) @ centred / parts.shape[1]


@pytest.mark.parametrize("bn_class, shape", [
    (ComplexBatchNorm2d, (32, 3, 5, 5)), (ComplexBatchNorm1d, (256, 3)), (ComplexBatchNorm1d, (32, 3, 8)),
])
def test_batch_norm_whitens_each_channel_in_training_mode(bn_class, shape):
    z = correlated_complex(shape[0], shape[1], *shape[2:])
    _, covariance_before = channel_moments(z)
    assert covariance_before[:, 0, 1].abs().min() > 0.5  # the input really is correlated
    out = bn_class(shape[1], affine=False).train()(z)
    mean, covariance = channel_moments(out)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(covariance, torch.eye(2).expand(shape[1], 2, 2), atol=1e-3, rtol=0)


def reference_batch_norm(z, gamma_rr, gamma_ri, gamma_ii, beta, eps):
    """Section 3.5 written out in float64: Gamma V^{-1/2} (z - E z) + beta, V^{-1/2} by eigendecomposition."""
    parts = torch.view_as_real(z).double().movedim(1, 0).reshape(z.shape[1], -1, 2)  # (C, M, 2)
    centred = parts - parts.mean(dim=1, keepdim=True)
    covariance = centred.transpose(1, 2) @ centred / parts.shape[1] + eps * torch.eye(2, dtype=torch.float64)
    eigenvalues, q = torch.linalg.eigh(covariance)
    whitening = q @ torch.diag_embed(eigenvalues.rsqrt()) @ q.transpose(1, 2)
    gamma = torch.stack([torch.stack([gamma_rr, gamma_ri], -1), torch.stack([gamma_ri, gamma_ii], -1)], -2).double()
    out = centred @ (gamma @ whitening).transpose(1, 2) + torch.view_as_real(beta).double()[:, None]
    out = out.reshape(z.shape[1], z.shape[0], *z.shape[2:], 2).movedim(0, 1)
    return torch.view_as_complex(out.float().contiguous())


@pytest.mark.parametrize("bn_class, shape", [(ComplexBatchNorm2d, (16, 3, 4, 5)), (ComplexBatchNorm1d, (64, 3))])
def test_batch_norm_values_and_gradients_equal_the_written_out_formula(bn_class, shape):
    bn = bn_class(shape[1]).train()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        bn.gamma_rr.copy_(0.7 + 0.1 * torch.randn(shape[1], generator=g))
        bn.gamma_ri.copy_(0.2 * torch.randn(shape[1], generator=g))
        bn.gamma_ii.copy_(0.6 + 0.1 * torch.randn(shape[1], generator=g))
        bn.beta.copy_(crandn(shape[1], seed=5))
    z = correlated_complex(shape[0], shape[1], *shape[2:]).requires_grad_()
    upstream = crandn(*shape, seed=6)
    out = bn(z)
    out.backward(upstream)
    params = (bn.gamma_rr, bn.gamma_ri, bn.gamma_ii, bn.beta)
    grads = [z.grad] + [p.grad for p in params]
    leaves = [t.detach().clone().requires_grad_() for t in (z, *params)]
    expected = reference_batch_norm(*leaves, eps=bn.eps)
    expected.backward(upstream)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    for grad, leaf in zip(grads, leaves):
        torch.testing.assert_close(grad, leaf.grad, rtol=1e-3, atol=1e-4)


def test_batch_norm_eval_uses_the_running_statistics():
    bn = ComplexBatchNorm2d(2, affine=False, momentum=0.25)
    batch = correlated_complex(16, 2, 3, 3)
    bn.train()(batch)
    batch_mean, batch_cov = channel_moments(batch)
    n = batch.numel() // 2
    expected_mean = 0.25 * torch.view_as_complex(batch_mean.contiguous())
    expected_cov = 0.75 * torch.eye(2) + 0.25 * batch_cov * n / (n - 1)  # unbiased, like torch.nn.BatchNorm
    torch.testing.assert_close(bn.running_mean, expected_mean, atol=1e-5, rtol=1e-5)
    running = torch.stack([bn.running_covar[:, 0], bn.running_covar[:, 1], bn.running_covar[:, 1],
                           bn.running_covar[:, 2]], dim=1).view(2, 2, 2)
    torch.testing.assert_close(running, expected_cov, atol=1e-4, rtol=1e-4)

    bn.eval()
    other = correlated_complex(4, 2, 3, 3, seed=1)
    out = bn(other)
    # reference whitening with an eigendecomposition: V^{-1/2} = Q diag(1/sqrt(l)) Q^T
    eigenvalues, q = torch.linalg.eigh(running + bn.eps * torch.eye(2))
    inverse_sqrt = q @ torch.diag_embed(eigenvalues.rsqrt()) @ q.transpose(1, 2)
    centred = torch.view_as_real(other - bn.running_mean.view(1, 2, 1, 1))  # (N, C, H, W, 2)
    expected = torch.einsum("cij,nchwj->nchwi", inverse_sqrt, centred)
    torch.testing.assert_close(torch.view_as_real(out), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(bn(other[:1]), out[:1])  # one image alone: the same output
    torch.testing.assert_close(bn.running_mean, expected_mean)  # eval does not update


def test_batch_norm_affine_starts_at_one_over_root_two_and_rejects_single_values():
    bn = ComplexBatchNorm1d(4)
    assert torch.allclose(bn.gamma_rr, torch.full((4,), 2 ** -0.5)) and torch.all(bn.gamma_ri == 0)
    assert bn.beta.dtype == torch.complex64 and torch.all(bn.beta == 0)
    out = bn(correlated_complex(64, 4))
    _, covariance = channel_moments(out)
    torch.testing.assert_close(covariance, 0.5 * torch.eye(2).expand(4, 2, 2), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(crandn(1, 4))
    with pytest.raises(ValueError, match="4-d"):
        ComplexBatchNorm2d(4)(crandn(2, 4))


# ------------------------------------------------------------------------------------------------ activations
def test_crelu_and_zrelu_match_their_formulas():
    z = torch.tensor([1 + 1j, -1 + 2j, 2 - 3j, -1 - 1j, 1 + 0j, 2j, -1 + 0j, 1 - 0.001j, 0j])
    assert torch.equal(CReLU()(z), torch.complex(z.real.clamp(min=0), z.imag.clamp(min=0)))
    phase = torch.angle(z)
    kept = (phase >= 0) & (phase <= math.pi / 2)
    assert torch.equal(ZReLU()(z), torch.where(kept, z, torch.zeros_like(z)))
    assert kept.tolist() == [True, False, False, False, True, True, False, False, True]


def test_modrelu_matches_its_formula_and_is_safe_at_zero():
    act = ModReLU(3)
    with torch.no_grad():
        act.bias.copy_(torch.tensor([-0.5, 0.2, 1.0]))
    z = crandn(4, 3, 2, 2)
    z[0, :, 0, 0] = 0
    z = z.requires_grad_()
    out = act(z)
    modulus = z.detach().abs()
    expected = F.relu(modulus + act.bias.detach().view(1, 3, 1, 1)) * z.detach() / modulus
    expected[0, :, 0, 0] = 0
    torch.testing.assert_close(out.detach(), expected)
    assert torch.all(out[0, :, 0, 0] == 0)
    out.abs().sum().backward()
    assert torch.isfinite(torch.view_as_real(z.grad)).all() and torch.isfinite(act.bias.grad).all()
    assert act.bias.grad.abs().sum() > 0


def test_dropout_shares_one_mask_and_rescales_once():
    torch.manual_seed(0)
    z = torch.complex(torch.rand(200, 50) + 0.5, -(torch.rand(200, 50) + 0.5))  # no zero parts
    drop = ComplexDropout(0.3).train()
    out = drop(z)
    dropped_real, dropped_imag = out.real == 0, out.imag == 0
    assert torch.equal(dropped_real, dropped_imag)  # the same entries lose both parts
    kept = ~dropped_real
    torch.testing.assert_close(out[kept], z[kept] / 0.7)  # both parts scaled by 1/(1-p), once
    assert abs(kept.float().mean().item() - 0.7) < 0.02
    assert torch.equal(drop.eval()(z), z)
    with pytest.raises(ValueError, match="dropout probability"):
        ComplexDropout(1.0)


# ------------------------------------------------------------------------------------------------ initialisation
def ks_statistic(samples: torch.Tensor, cdf) -> float:
    """Kolmogorov-Smirnov distance between the samples' empirical CDF and ``cdf``."""
    x, _ = samples.double().flatten().sort()
    n = len(x)
    theoretical = cdf(x)
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - theoretical
    lower = theoretical - torch.arange(0, n, dtype=torch.float64) / n
    return max(upper.max().item(), lower.max().item())


@pytest.mark.parametrize("init, sigma_of", [
    (complex_he_init_, lambda fan_in, fan_out: fan_in ** -0.5),
    (complex_glorot_init_, lambda fan_in, fan_out: (fan_in + fan_out) ** -0.5),
])
def test_initialisers_give_rayleigh_modulus_and_uniform_phase(init, sigma_of):
    weight = torch.empty(64, 32, 3, 3, dtype=torch.complex64)  # 18,432 draws
    init(weight, generator=torch.Generator().manual_seed(0))
    sigma = sigma_of(32 * 9, 64 * 9)
    n = weight.numel()
    critical = 1.63 / math.sqrt(n)  # KS test at the 1 % level
    assert ks_statistic(weight.abs(), lambda r: 1 - torch.exp(-r ** 2 / (2 * sigma ** 2))) < critical
    assert ks_statistic(weight.angle(), lambda t: (t + math.pi) / (2 * math.pi)) < critical
    # and not some other scale: the Rayleigh mean is sigma * sqrt(pi / 2), E|W|^2 = 2 sigma^2
    assert weight.abs().mean().item() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.02)
    assert weight.abs().square().mean().item() == pytest.approx(2 * sigma ** 2, rel=0.03)
    wrong_scale = ks_statistic(weight.abs(), lambda r: 1 - torch.exp(-r ** 2 / (2 * (1.1 * sigma) ** 2)))
    assert wrong_scale > critical


def test_layers_initialise_with_he_by_default():
    layer = ComplexConv2d(16, 32, 3)
    fan_in = 16 * 9
    assert layer.weight.abs().square().mean().item() == pytest.approx(2 / fan_in, rel=0.05)
    assert torch.all(layer.bias == 0)


# ------------------------------------------------------------------------------------------------ the nets
@pytest.mark.parametrize("activation", ["crelu", "modrelu", "zrelu"])
def test_every_complexnet_parameter_gets_a_gradient(activation):
    torch.manual_seed(0)
    model = ComplexNet(activation=activation)
    log_probs = model(torch.randn(8, 1, 28, 28))
    assert log_probs.shape == (8, 10) and log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(8))
    F.nll_loss(log_probs, torch.arange(8)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert isinstance(model.network[0], LearnedImaginaryInput)
    assert isinstance(model.network[-1][0], ComplexMagnitude)


def test_complexnet_rejects_a_wrong_image_shape():
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, 28, 28\)"):
        ComplexNet()(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="activation"):
        ComplexNet(activation="tanh")


def test_realnet_has_about_as_many_real_parameters_as_complexnet():
    complex_numbers, real_numbers = real_count(ComplexNet()), real_count(RealNet())
    assert complex_numbers == 862_272
    assert abs(real_numbers - complex_numbers) / complex_numbers < 0.01
    assert RealNet()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_dropout_option_adds_one_dropout_layer_of_each_nets_kind_before_the_last_layer():
    plain_names = [name for name, _ in ComplexNet().named_parameters()]
    for net, kind in ((ComplexNet, ComplexDropout), (RealNet, nn.Dropout)):
        assert not any(isinstance(m, (ComplexDropout, nn.Dropout)) for m in net().modules())
        model = net(dropout=0.25)
        dropouts = [m for m in model.modules() if isinstance(m, (ComplexDropout, nn.Dropout))]
        assert len(dropouts) == 1 and type(dropouts[0]) is kind and dropouts[0].p == 0.25
        assert model.network[-3] is dropouts[0]  # hidden act -> dropout -> last linear -> output
        model.eval()
        x = torch.randn(3, 1, 28, 28)
        torch.testing.assert_close(model(x), model(x))  # no dropout in eval mode
        with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
            net(dropout=1.0)
    # Without dropout the paper's net keeps its parameter names (the shipped weights load).
    assert [name for name, _ in ComplexNet(dropout=0.0).named_parameters()] == plain_names


def test_complexnet_init_option_reaches_every_complex_layer():
    layers = [m for m in ComplexNet(init="glorot").modules() if isinstance(m, (ComplexConv2d, ComplexLinear))]
    assert len(layers) == 4 and all(layer.init == "glorot" for layer in layers)
    assert all(m.init == "he" for m in ComplexNet().modules() if isinstance(m, (ComplexConv2d, ComplexLinear)))
    with pytest.raises(ValueError, match="init must be one of"):
        ComplexNet(init="xavier")


@pytest.mark.parametrize("init", ["he", "glorot"])
def test_realnet_init_matches_the_second_moment_of_the_complex_initialiser(init):
    """RealNet's ``init`` gives its weights the E|w|^2 that ComplexNet's initialiser of the same name gives."""
    torch.manual_seed(0)
    real = RealNet(init=init).network[7]  # Linear(1136, 707)
    complex_ = ComplexNet(init=init).network[7]  # ComplexLinear(800, 500)
    for layer in (real, complex_):
        fan_out, fan_in = layer.weight.shape
        expected = 2 / fan_in if init == "he" else 2 / (fan_in + fan_out)
        assert layer.weight.abs().square().mean().item() == pytest.approx(expected, rel=0.02)
        assert torch.all(layer.bias == 0)
    torch.manual_seed(0)
    default = RealNet().network[7].weight
    assert default.square().mean().item() == pytest.approx(1 / (3 * 1136), rel=0.02)  # PyTorch's own init
    with pytest.raises(ValueError, match="init must be None or one of"):
        RealNet(init="xavier")


class GaussConvComplexNet(ComplexNet):
    """A subclass that changes one factory: its convolutions use the three-multiplication product."""

    def conv(self, in_channels, out_channels):
        return ComplexConv2d(in_channels, out_channels, self.hparams.kernel_size, stride=self.hparams.stride,
                             method="gauss")


def test_a_subclass_overrides_one_factory():
    torch.manual_seed(0)
    base = ComplexNet()
    torch.manual_seed(0)
    subclass = GaussConvComplexNet()
    assert [m.method for m in subclass.modules() if isinstance(m, ComplexConv2d)] == ["gauss", "gauss"]
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(subclass.eval()(x), base.eval()(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_complexnet_trains_and_round_trips_through_checkpoints(mnist_root, tmp_path, precision):
    from datamodules import MNISTDataModule

    L.seed_everything(0)
    model = ComplexNet()
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=3, limit_val_batches=1, precision=precision,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    before = model.network[1].weight.detach().clone()
    trainer.fit(model, datamodule=MNISTDataModule(root=str(mnist_root), batch_size=16))
    after = model.network[1].weight
    assert after.dtype == torch.complex64 and not torch.equal(before, after)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])

    model.eval()
    x = torch.randn(3, 1, 28, 28)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    reloaded = ComplexNet.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True).eval()
    torch.testing.assert_close(reloaded(x), model(x), rtol=0, atol=0)
    save_model(model, str(tmp_path / "model.safetensors"))
    fresh = ComplexNet()
    load_model(fresh, str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(fresh.eval()(x), model(x), rtol=0, atol=0)


def test_zoo_fit_bf16_mixed_fast_dev_run(mnist_root, tmp_path):
    proc = run_zoo(
        "fit", "-c", "complex_net_mnist5k", "--data.init_args.root", str(mnist_root),
        "--trainer.fast_dev_run", "2", "--trainer.precision", "bf16-mixed", "--test_after_fit", "false",
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Using bfloat16 Automatic Mixed Precision" in proc.stderr + proc.stdout


@pytest.mark.parametrize("entry", COMPLEX_ENTRIES)
def test_every_config_builds_its_network(entry):
    config = registry.get(entry).config
    model = untrained_model_of(entry)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    twin = entry.replace("complex_net", "real_net") if entry.startswith("complex") else entry.replace(
        "real_net", "complex_net")
    assert registry.get(twin).config["trainer"] == config["trainer"]  # the same budget for both nets
    assert registry.get(twin).config["data"] == config["data"]
    # the same training recipe (optimizer, lr, momentum, weight decay, schedule) for both nets; only the net's own
    # choices (initialiser, dropout), each picked on validation accuracy from the same sweep, may differ
    recipe = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "lr_step_gamma")
    twin_args, args = registry.get(twin).config["model"]["init_args"], config["model"]["init_args"]
    assert set(args) - set(recipe) <= {"init", "dropout"} and set(twin_args) - set(recipe) <= {"init", "dropout"}
    assert {key: twin_args.get(key) for key in recipe} == {key: args.get(key) for key in recipe}

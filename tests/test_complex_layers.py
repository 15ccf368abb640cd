"""Deep complex networks' layers (zoo.layers.complex): complex convolutions and linear layers against PyTorch's
complex arithmetic, batch norm whitening, activations, dropout and Rayleigh initialisation."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers import (ComplexBatchNorm1d, ComplexBatchNorm2d, ComplexConv2d, ComplexDropout, ComplexLinear, CReLU,
                        LearnedImaginaryInput, ModReLU, ZReLU, complex_glorot_init_, complex_he_init_)
from zoo.layers.complex import (GAUSS_MIN_MACS, SingleChannelConv2d, complex_from_parts, deinterleaved, interleaved,
                                planar_parts)


def crandn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


def with_random_bias(layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        layer.bias.copy_(crandn(*layer.bias.shape, seed=9))
    return layer


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

    z = crandn(2, 3, 4, 5).contiguous(memory_format=memory_format)
    real, imag = planar_parts(z)
    assert torch.equal(real, z.real) and torch.equal(imag, z.imag)
    assert real.is_contiguous(memory_format=memory_format) and imag.is_contiguous(memory_format=memory_format)


def test_auto_method_picks_block_for_small_and_gauss_for_large_convolutions():

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

    real, imag = (torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(s)).requires_grad_() for s in (0, 1))
    out = complex_from_parts(real, imag)
    assert torch.equal(out, torch.complex(real, imag))
    upstream = crandn(2, 3, 4, seed=2)
    out.backward(upstream)
    assert torch.equal(real.grad, upstream.real) and torch.equal(imag.grad, upstream.imag)
    assert real.grad.is_contiguous() and imag.grad.is_contiguous()


def test_single_channel_conv_equals_a_plain_convolution_with_the_same_parameters():

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


@pytest.mark.parametrize("layer, z", [(lambda: ComplexLinear(4, 3), lambda: crandn(2, 4)),
                                      (lambda: ComplexConv2d(3, 2, 3), lambda: crandn(2, 3, 8, 8))])
def test_complex128_input_names_the_dtype_and_the_conversion_that_works(layer, z):
    z128 = z().to(torch.complex128)
    with pytest.raises(TypeError, match=r"complex64 weights and got a torch.complex128 input; convert the input "
                                        r"with .to\(torch.complex64\), or the layer with .to\(torch.complex128\)"):
        layer()(z128)
    with pytest.raises(TypeError, match=r"complex64 weights and got a torch.complex128"):
        layer().double()(z128)  # .double() leaves complex parameters as they are
    with warnings.catch_warnings():  # PyTorch's own, about the lost imaginary parts (warned once per process)
        warnings.simplefilter("ignore")
        real = layer().to(torch.float64)
    with pytest.raises(TypeError, match=r"holds torch.float64 weights: .*dropped their imaginary parts"):
        real(z128)
    torch.manual_seed(0)
    net = layer()
    expected = net(z128.to(torch.complex64))
    with warnings.catch_warnings():  # PyTorch's "Complex modules are a new feature" (warned once per process)
        warnings.simplefilter("ignore")
        net = net.to(torch.complex128)
    torch.testing.assert_close(net(z128), expected.to(torch.complex128), rtol=1e-4, atol=1e-5)


def test_modrelu_names_a_missing_batch_dimension():
    with pytest.raises(ValueError, match=r"expects 4 channels/features in dimension 1 of a batch, got shape \(4,\); "
                                         r"for one sample, add the batch dimension"):
        ModReLU(4)(crandn(4))
    with pytest.raises(ValueError, match=r"dimension -1 of a batch, got shape \(\)"):
        ComplexLinear(4, 3)(crandn(4)[0])


def test_batch_norm_momentum_none_keeps_the_cumulative_average_as_nn_batchnorm_does():
    bn = ComplexBatchNorm2d(2, affine=False, momentum=None)
    batches = [correlated_complex(16, 2, 3, 3, seed=seed) for seed in range(3)]
    for batch in batches:
        bn(batch)
    n = batches[0].numel() // 2
    means, covariances = zip(*(channel_moments(batch) for batch in batches))
    expected_mean = torch.view_as_complex(torch.stack(means).mean(0).contiguous())
    torch.testing.assert_close(bn.running_mean, expected_mean, atol=1e-5, rtol=1e-5)
    expected_cov = torch.stack(covariances).mean(0) * n / (n - 1)
    torch.testing.assert_close(bn.running_covar, expected_cov.flatten(1)[:, [0, 1, 3]], atol=1e-4, rtol=1e-4)


def test_batch_norm_takes_complex128_input_in_training_and_eval():
    """A complex128 batch updates the complex64 running statistics as its complex64 copy does."""
    batch = correlated_complex(16, 2, 3, 3, seed=0)
    wide, narrow = ComplexBatchNorm2d(2), ComplexBatchNorm2d(2)
    out = wide(batch.to(torch.complex128))
    assert out.dtype == torch.complex128
    torch.testing.assert_close(out.to(torch.complex64), narrow(batch), atol=1e-5, rtol=1e-5)
    assert wide.running_mean.dtype == torch.complex64
    torch.testing.assert_close(wide.running_mean, narrow.running_mean)
    torch.testing.assert_close(wide.running_covar, narrow.running_covar)
    assert wide.eval()(batch.to(torch.complex128)).dtype == torch.complex128


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

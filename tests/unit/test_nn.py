"""Unit tests for :mod:`stylekit.nn` (module twins of stylekit.functional)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from stylekit import functional as SF
from stylekit import nn as SN
from stylekit.errors import StylekitError

from .. import reference

F64 = reference.F64


# independent float64 references (tests/reference.py), as tensors


def _as_tensor(formula):
    return lambda *args, **kwargs: torch.from_numpy(formula(*args, **kwargs))


ref_batch_norm = _as_tensor(reference.batch_norm)
ref_instance_norm = _as_tensor(reference.instance_norm)
ref_adain = _as_tensor(reference.adain)
_np, _close = reference.to_np, reference.close


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------
# BatchNorm
# ---------------------------------------------------------------------------


def _paired_bn(c, momentum=0.1, eps=1e-5, affine=True):
    ours = SN.BatchNorm(c, affine=affine, eps=eps, momentum=momentum).double()
    theirs = nn.BatchNorm2d(c, affine=affine, eps=eps, momentum=momentum).double()
    if affine:
        w, b = torch.randn(c, dtype=torch.float64), torch.randn(c, dtype=torch.float64)
        with torch.no_grad():
            ours.weight.copy_(w)
            ours.bias.copy_(b)
            theirs.weight.copy_(w)
            theirs.bias.copy_(b)
    return ours, theirs


class TestBatchNorm:
    def test_initial_state(self):
        bn = SN.BatchNorm(3)
        _close(bn.weight, torch.ones(3))
        _close(bn.bias, torch.zeros(3))
        _close(bn.running_mean, torch.zeros(3))
        _close(bn.running_var, torch.ones(3))
        assert {n for n, _ in bn.named_buffers()} >= {"running_mean", "running_var"}
        assert bn.momentum == 0.1 and bn.eps == 1e-5

    def test_train_output_matches_reference(self):
        bn, _ = _paired_bn(3)
        x = torch.randn(4, 3, 5, 3, dtype=torch.float64) * 2 + 1
        _close(bn(x), ref_batch_norm(x, bn.weight, bn.bias))

    def test_one_step_running_stats_by_hand(self):
        bn = SN.BatchNorm(2).double()
        x = torch.randn(3, 2, 4, 5, dtype=torch.float64) * 3 + 2
        bn(x)
        a = _np(x)
        for j in range(2):
            vals = a[:, j].ravel()
            m = vals.mean()
            v_unbiased = ((vals - m) ** 2).sum() / (vals.size - 1)
            assert bn.running_mean[j].item() == pytest.approx(0.1 * m, rel=1e-12, abs=1e-12)
            assert bn.running_var[j].item() == pytest.approx(0.9 * 1.0 + 0.1 * v_unbiased, rel=1e-12)

    @pytest.mark.parametrize("momentum", [0.1, 0.3])
    @pytest.mark.parametrize("shape", [(4, 3, 5, 3), (2, 2, 1, 3), (3, 1, 2, 2)])
    def test_matches_torch_batchnorm2d_over_several_steps(self, momentum, shape):
        ours, theirs = _paired_bn(shape[1], momentum=momentum)
        ours.train()
        theirs.train()
        for step in range(3):
            x = torch.randn(shape, dtype=torch.float64) * (step + 1) + step
            _close(ours(x), theirs(x))
            _close(ours.running_mean, theirs.running_mean)
            _close(ours.running_var, theirs.running_var)
        ours.eval()
        theirs.eval()
        x = torch.randn(shape, dtype=torch.float64) * 2 - 1
        _close(ours(x), theirs(x))

    def test_eval_uses_running_stats_and_does_not_update(self):
        bn = SN.BatchNorm(2).double().eval()
        with torch.no_grad():
            bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
            bn.running_var.copy_(torch.tensor([4.0, 0.25]))
            bn.weight.copy_(torch.tensor([2.0, 3.0]))
            bn.bias.copy_(torch.tensor([0.5, -0.5]))
        x = torch.randn(3, 2, 3, 4, dtype=torch.float64)
        out = bn(x)
        expected = torch.empty_like(x)
        expected[:, 0] = (x[:, 0] - 1.0) / math.sqrt(4.0 + 1e-5) * 2.0 + 0.5
        expected[:, 1] = (x[:, 1] + 2.0) / math.sqrt(0.25 + 1e-5) * 3.0 - 0.5
        _close(out, expected)
        _close(bn.running_mean, torch.tensor([1.0, -2.0]))
        _close(bn.running_var, torch.tensor([4.0, 0.25]))
        # eval output does not depend on the other samples of the batch
        _close(bn(x[:1]), out[:1])

    def test_affine_false(self):
        bn = SN.BatchNorm(3, affine=False).double()
        assert bn.weight is None and bn.bias is None
        assert len(list(bn.parameters())) == 0
        x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        _close(bn(x), ref_batch_norm(x))
        ours, theirs = _paired_bn(3, affine=False)
        for _ in range(2):
            x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
            _close(ours(x), theirs(x))
        ours.eval()
        theirs.eval()
        _close(ours(x), theirs(x))

    def test_gradients_match_torch(self):
        ours, theirs = _paired_bn(3)
        x = torch.randn(2, 3, 4, 3, dtype=torch.float64)
        x1 = x.clone().requires_grad_()
        x2 = x.clone().requires_grad_()
        g = torch.randn_like(x)
        (ours(x1) * g).sum().backward()
        (theirs(x2) * g).sum().backward()
        _close(x1.grad, x2.grad)
        _close(ours.weight.grad, theirs.weight.grad)
        _close(ours.bias.grad, theirs.bias.grad)

    def test_extra_repr(self):
        r = repr(SN.BatchNorm(4, affine=False, eps=1e-3))
        assert "4" in r and "eps=0.001" in r and "affine=False" in r

    @pytest.mark.parametrize("training", [True, False])
    def test_wrong_ndim_raises_stylekit_error(self, training):
        bn = SN.BatchNorm(3).train(training)
        with pytest.raises(StylekitError):
            bn(torch.randn(3, 4, 5))

    @pytest.mark.parametrize("training", [True, False])
    def test_wrong_channels_raises_stylekit_error(self, training):
        bn = SN.BatchNorm(3).train(training)
        with pytest.raises(StylekitError):
            bn(torch.randn(2, 4, 5, 5))


# ---------------------------------------------------------------------------
# InstanceNorm
# ---------------------------------------------------------------------------


class TestInstanceNorm:
    @pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 3, 1), (3, 4, 2, 2)])
    @pytest.mark.parametrize("training", [True, False])
    def test_matches_torch_instancenorm2d(self, shape, training):
        c = shape[1]
        ours = SN.InstanceNorm(c, eps=1e-4).double().train(training)
        theirs = nn.InstanceNorm2d(c, affine=True, eps=1e-4).double().train(training)
        with torch.no_grad():
            w, b = torch.randn(c, dtype=torch.float64), torch.randn(c, dtype=torch.float64)
            ours.weight.copy_(w)
            ours.bias.copy_(b)
            theirs.weight.copy_(w)
            theirs.bias.copy_(b)
        x = torch.randn(shape, dtype=torch.float64) * 3 + 1
        _close(ours(x), theirs(x))
        _close(ours(x), ref_instance_norm(x, w, b, eps=1e-4))

    def test_affine_false(self):
        m = SN.InstanceNorm(2, affine=False).double()
        assert m.weight is None and m.bias is None
        x = torch.randn(2, 2, 3, 5, dtype=torch.float64)
        _close(m(x), ref_instance_norm(x))

    def test_hand_computed(self):
        m = SN.InstanceNorm(1, eps=0.0).double()
        with torch.no_grad():
            m.weight.fill_(2.0)
            m.bias.fill_(1.0)
        x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
        expected = torch.tensor([[[[-1.5, -0.5], [0.5, 1.5]]]], dtype=torch.float64) / math.sqrt(1.25) * 2 + 1
        _close(m(x), expected)

    def test_gradients_match_torch(self):
        ours = SN.InstanceNorm(2).double()
        theirs = nn.InstanceNorm2d(2, affine=True).double()
        x = torch.randn(2, 2, 3, 4, dtype=torch.float64)
        g = torch.randn_like(x)
        (ours(x) * g).sum().backward()
        (theirs(x) * g).sum().backward()
        _close(ours.weight.grad, theirs.weight.grad)
        _close(ours.bias.grad, theirs.bias.grad)

    def test_errors(self):
        m = SN.InstanceNorm(3)
        with pytest.raises(StylekitError):
            m(torch.randn(3, 4, 4))
        with pytest.raises(StylekitError):
            m(torch.randn(1, 2, 4, 4))


# ---------------------------------------------------------------------------
# ConditionalInstanceNorm
# ---------------------------------------------------------------------------


def _cin(c=3, s=4, eps=1e-5):
    m = SN.ConditionalInstanceNorm(c, s, eps=eps).double()
    with torch.no_grad():
        m.weight.copy_(torch.randn(s, c, dtype=torch.float64))
        m.bias.copy_(torch.randn(s, c, dtype=torch.float64))
    return m


class TestConditionalInstanceNorm:
    def test_parameters(self):
        m = SN.ConditionalInstanceNorm(3, 5)
        assert m.weight.shape == (5, 3) and m.bias.shape == (5, 3)
        _close(m.weight, torch.ones(5, 3))
        _close(m.bias, torch.zeros(5, 3))
        x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        # at init every style is the identity affine map -> plain instance norm
        _close(m.double()(x, torch.tensor([0, 4])), ref_instance_norm(x))

    def test_index_equals_one_hot_row(self):
        m = _cin()
        x = torch.randn(3, 3, 5, 4, dtype=torch.float64)
        idx = torch.tensor([3, 0, 2])
        out_idx = m(x, idx)
        one_hot = torch.zeros(3, 4, dtype=torch.float64)
        one_hot[torch.arange(3), idx] = 1.0
        _close(out_idx, m(x, one_hot))
        for i, s in enumerate(idx.tolist()):
            _close(out_idx[i : i + 1], ref_instance_norm(x[i : i + 1], m.weight[s], m.bias[s]))

    def test_int32_indices_accepted(self):
        m = _cin()
        x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        idx = torch.tensor([1, 2])
        _close(m(x, idx.to(torch.int32)), m(x, idx))

    def test_float_blend_matches_reference(self):
        m = _cin(c=2, s=3)
        x = torch.randn(2, 2, 3, 5, dtype=torch.float64)
        sw = torch.tensor([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]], dtype=torch.float64)
        out = m(x, sw)
        for i in range(2):
            w = sum(sw[i, s] * m.weight[s] for s in range(3))
            b = sum(sw[i, s] * m.bias[s] for s in range(3))
            _close(out[i : i + 1], ref_instance_norm(x[i : i + 1], w, b))

    def test_float32_module(self):
        m = SN.ConditionalInstanceNorm(2, 2)
        with torch.no_grad():
            m.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
            m.bias.copy_(torch.tensor([[0.0, 1.0], [-1.0, 0.5]]))
        x = torch.randn(2, 2, 4, 3)
        out = m(x, torch.tensor([1, 0]))
        assert out.dtype == torch.float32
        _close(out[0:1], ref_instance_norm(x[0:1], m.weight[1], m.bias[1]), rtol=1e-4, atol=1e-4)
        _close(out[1:2], ref_instance_norm(x[1:2], m.weight[0], m.bias[0]), rtol=1e-4, atol=1e-4)

    def test_gradient_reaches_only_selected_style(self):
        m = _cin(c=2, s=3)
        x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
        (m(x, torch.tensor([1, 1])) * torch.randn(2, 2, 3, 3, dtype=torch.float64)).sum().backward()
        assert torch.all(m.weight.grad[[0, 2]] == 0) and torch.all(m.bias.grad[[0, 2]] == 0)
        assert torch.all(m.weight.grad[1] != 0) and torch.all(m.bias.grad[1] != 0)

    def test_2d_integer_indices_raise(self):
        m = _cin()
        with pytest.raises(StylekitError, match=r"\(N,\)"):
            m(torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.tensor([[0], [1]]))

    def test_wrong_float_weights_shape_raises(self):
        m = _cin()
        with pytest.raises(StylekitError, match="style_weights"):
            m(torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64))

    @pytest.mark.parametrize("bad", [4, -1])
    def test_out_of_range_index_raises(self, bad):
        m = _cin()
        with pytest.raises(StylekitError):
            m(torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.tensor([0, bad]))


# ---------------------------------------------------------------------------
# AdaIN
# ---------------------------------------------------------------------------


class TestAdaINModule:
    @pytest.mark.parametrize("eps", [1e-5, 0.5])
    def test_equals_functional_and_reference(self, eps):
        m = SN.AdaIN(eps=eps)
        content = torch.randn(2, 3, 5, 4, dtype=torch.float64)
        style = torch.randn(2, 3, 3, 7, dtype=torch.float64) * 2 + 1
        out = m(content, style)
        _close(out, SF.adain(content, style, eps))
        _close(out, ref_adain(content, style, eps))

    def test_no_parameters(self):
        assert len(list(SN.AdaIN().parameters())) == 0

    def test_errors(self):
        with pytest.raises(StylekitError):
            SN.AdaIN()(torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4))


# ---------------------------------------------------------------------------
# SPADE
# ---------------------------------------------------------------------------


def _spade(c=3, labels=2, hidden=8):
    return SN.SPADE(c, labels, hidden=hidden).double()


class TestSPADE:
    @pytest.mark.parametrize(
        "x_hw,label_hw",
        [((8, 6), (8, 6)), ((8, 6), (4, 3)), ((8, 6), (16, 12)), ((7, 5), (3, 4)), ((5, 9), (11, 2)), ((1, 1), (4, 4))],
    )
    def test_output_shape(self, x_hw, label_hw):
        m = _spade()
        x = torch.randn(2, 3, *x_hw, dtype=torch.float64)
        out = m(x, torch.rand(2, 2, *label_hw, dtype=torch.float64))
        assert out.shape == x.shape
        assert torch.isfinite(out).all()

    def test_modulation_maps_have_x_size(self):
        m = _spade(c=4, labels=3)
        gamma, beta = m.modulation(torch.rand(2, 3, 3, 5, dtype=torch.float64), (7, 6))
        assert gamma.shape == (2, 4, 7, 6) and beta.shape == (2, 4, 7, 6)

    def test_label_map_resized_with_nearest(self):
        m = _spade()
        x = torch.randn(1, 3, 8, 6, dtype=torch.float64)
        small = torch.rand(1, 2, 4, 3, dtype=torch.float64)
        # nearest upsampling by an integer factor is plain repetition
        big = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        _close(m(x, small), m(x, big))
        # bilinear upsampling would give something else
        bilinear = F.interpolate(small, size=(8, 6), mode="bilinear", align_corners=False)
        assert not torch.allclose(m(x, small), m(x, bilinear))

    def test_formula_with_constant_modulation(self):
        m = _spade(c=3, labels=2)
        g = torch.tensor([0.5, -2.0, 1.5], dtype=torch.float64)
        b = torch.tensor([1.0, 0.0, -3.0], dtype=torch.float64)
        with torch.no_grad():
            m.gamma.weight.zero_()
            m.beta.weight.zero_()
            m.gamma.bias.copy_(g)
            m.beta.bias.copy_(b)
        x = torch.randn(2, 3, 5, 4, dtype=torch.float64) * 3 + 1
        out = m(x, torch.rand(2, 2, 3, 3, dtype=torch.float64))
        expected = ref_batch_norm(x) * (1 + g.view(1, 3, 1, 1)) + b.view(1, 3, 1, 1)
        _close(out, expected)

    def test_formula_against_module_modulation(self):
        m = _spade(c=2, labels=3)
        x = torch.randn(2, 2, 6, 5, dtype=torch.float64)
        label = torch.rand(2, 3, 6, 5, dtype=torch.float64)
        gamma, beta = m.modulation(label, (6, 5))
        assert gamma.abs().sum() > 0 and beta.abs().sum() > 0
        _close(m(x, label), ref_batch_norm(x) * (1 + gamma) + beta)

    def test_different_label_maps_give_different_outputs(self):
        m = _spade()
        x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
        l1 = torch.zeros(2, 2, 8, 8, dtype=torch.float64)
        l1[:, 0] = 1.0
        l2 = torch.zeros(2, 2, 8, 8, dtype=torch.float64)
        l2[:, 1] = 1.0
        assert not torch.allclose(m(x, l1), m(x, l2))

    def test_label_map_acts_locally(self):
        # shared 3x3 conv + gamma/beta 3x3 convs -> receptive field radius 2
        m = _spade()
        x = torch.randn(1, 3, 12, 12, dtype=torch.float64)
        l1 = torch.zeros(1, 2, 12, 12, dtype=torch.float64)
        l1[:, 0] = 1.0
        l2 = l1.clone()
        l2[:, :, 0:2, 0:2] = torch.tensor([0.0, 1.0], dtype=torch.float64).view(1, 2, 1, 1)
        diff = (m(x, l1) - m(x, l2)).abs().sum(dim=1)[0]
        assert diff[:4, :4].sum() > 1e-6  # changed region and its neighbourhood
        assert torch.all(diff[4:, :] == 0)
        assert torch.all(diff[:, 4:] == 0)

    def test_gradient_reaches_label_branch(self):
        m = _spade()
        x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        (m(x, torch.rand(2, 2, 4, 4, dtype=torch.float64)) * torch.randn(2, 3, 4, 4, dtype=torch.float64)).sum().backward()
        for p in m.parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0

    def test_structure(self):
        m = SN.SPADE(5, 7, hidden=16)
        conv = m.shared[0]
        assert conv.in_channels == 7 and conv.out_channels == 16 and conv.kernel_size == (3, 3)
        assert m.gamma.in_channels == 16 and m.gamma.out_channels == 5 and m.gamma.kernel_size == (3, 3)
        assert m.beta.in_channels == 16 and m.beta.out_channels == 5

    def test_label_map_wrong_ndim_raises(self):
        m = _spade()
        with pytest.raises(StylekitError, match="label map"):
            m(torch.randn(1, 3, 4, 4, dtype=torch.float64), torch.rand(2, 4, 4, dtype=torch.float64))

    def test_label_map_batch_mismatch_raises(self):
        m = _spade()
        with pytest.raises(StylekitError):
            m(torch.randn(1, 3, 4, 4, dtype=torch.float64), torch.rand(2, 2, 4, 4, dtype=torch.float64))

    def test_x_wrong_ndim_raises(self):
        m = _spade()
        with pytest.raises(StylekitError):
            m(torch.randn(3, 4, 4, dtype=torch.float64), torch.rand(1, 2, 4, 4, dtype=torch.float64))


def test_batchnorm_and_spade_under_bf16_autocast():
    from stylekit.nn import SPADE, BatchNorm

    x = torch.randn(2, 4, 6, 6)
    bn = BatchNorm(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bn(x.bfloat16())
    assert out.shape == x.shape and bn.running_mean.dtype == torch.float32
    assert torch.allclose(bn.running_mean, 0.1 * x.mean((0, 2, 3)), atol=2e-2)
    spade = SPADE(4, 3, hidden=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert spade(x, torch.rand(2, 3, 3, 3)).shape == x.shape

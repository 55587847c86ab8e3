"""Unit tests for :mod:`stylekit.functional` against independent references.

Every reference (tests/reference.py) is written from the papers' formulas
with plain numpy loops in float64; none of them calls stylekit.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from stylekit import functional as SF
from stylekit.errors import StylekitError

from .. import reference

F64, F32 = reference.F64, reference.F32

SHAPES = [(2, 3, 5, 7), (1, 1, 1, 4), (3, 2, 4, 1), (2, 4, 3, 3), (1, 3, 2, 5)]

# the float64 references: tests/reference.py
ref_mean_std, ref_masked_mean_std = reference.mean_std, reference.masked_mean_std
ref_batch_norm, ref_instance_norm = reference.batch_norm, reference.instance_norm
ref_conditional_instance_norm, ref_spade = reference.conditional_instance_norm, reference.spade
ref_adain, ref_adain_from_stats = reference.adain, reference.adain_from_stats
_np, _close, _rand = reference.to_np, reference.close, reference.rand


HAND = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
# mean 2.5, biased var 1.25
HAND_NORMED = torch.tensor([[[[-1.5, -0.5], [0.5, 1.5]]]], dtype=torch.float64) / math.sqrt(1.25)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------
# mean_std
# ---------------------------------------------------------------------------


class TestMeanStd:
    @pytest.mark.parametrize("shape", SHAPES)
    def test_matches_reference_float64(self, shape):
        x = torch.randn(shape, dtype=torch.float64) * 3 + 1
        mean, std = SF.mean_std(x)
        r_mean, r_std = ref_mean_std(x)
        assert mean.shape == (shape[0], shape[1], 1, 1)
        assert std.shape == (shape[0], shape[1], 1, 1)
        _close(mean, r_mean)
        _close(std, r_std)

    def test_float32_matches_reference(self):
        x = torch.randn(2, 3, 6, 5) * 2 - 1
        mean, std = SF.mean_std(x, eps=1e-3)
        assert mean.dtype == torch.float32 and std.dtype == torch.float32
        r_mean, r_std = ref_mean_std(x, eps=1e-3)
        _close(mean, r_mean, **F32)
        _close(std, r_std, **F32)

    def test_hand_computed(self):
        mean, std = SF.mean_std(HAND, eps=0.0)
        _close(mean, [[[[2.5]]]])
        _close(std, [[[[math.sqrt(1.25)]]]])

    def test_biased_variance_not_unbiased(self):
        mean, std = SF.mean_std(HAND, eps=0.0)
        # unbiased would be sqrt(5/3)
        assert abs(std.item() - math.sqrt(5 / 3)) > 0.1

    def test_eps_inside_sqrt(self):
        mean, std = SF.mean_std(HAND, eps=0.75)
        _close(std, [[[[math.sqrt(1.25 + 0.75)]]]])

    def test_constant_map_std_is_sqrt_eps(self):
        x = torch.full((1, 2, 3, 3), 7.0, dtype=torch.float64)
        mean, std = SF.mean_std(x, eps=1e-4)
        _close(mean, torch.full((1, 2, 1, 1), 7.0, dtype=torch.float64))
        _close(std, torch.full((1, 2, 1, 1), 1e-2, dtype=torch.float64))

    @pytest.mark.parametrize(
        "bad", [torch.randn(3, 4, 4), torch.randn(1, 1, 2, 3, 4), torch.ones(1, 1, 2, 2, dtype=torch.int64), [1.0, 2.0]]
    )
    def test_errors(self, bad):
        with pytest.raises(StylekitError, match=r"x must"):
            SF.mean_std(bad)


# ---------------------------------------------------------------------------
# masked_mean_std
# ---------------------------------------------------------------------------


class TestMaskedMeanStd:
    @pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 3, 1), (2, 1, 4, 4)])
    def test_soft_mask_matches_reference(self, shape):
        n, c, h, w = shape
        x = torch.randn(shape, dtype=torch.float64)
        mask = torch.rand(n, 1, h, w, dtype=torch.float64)
        mean, std = SF.masked_mean_std(x, mask)
        r_mean, r_std = ref_masked_mean_std(x, mask)
        assert mean.shape == (n, c, 1, 1) and std.shape == (n, c, 1, 1)
        _close(mean, r_mean)
        _close(std, r_std)

    def test_float32_matches_reference(self):
        x = torch.randn(2, 3, 5, 6)
        mask = torch.rand(2, 1, 5, 6)
        mean, std = SF.masked_mean_std(x, mask)
        r_mean, r_std = ref_masked_mean_std(x, mask)
        _close(mean, r_mean, **F32)
        _close(std, r_std, **F32)

    def test_full_mask_equals_unmasked(self):
        x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
        mean, std = SF.masked_mean_std(x, torch.ones(2, 1, 4, 5, dtype=torch.float64))
        r_mean, r_std = ref_mean_std(x)
        _close(mean, r_mean)
        _close(std, r_std)

    def test_binary_mask_uses_only_selected_positions(self):
        x = torch.randn(1, 2, 4, 5, dtype=torch.float64)
        mask = torch.zeros(1, 1, 4, 5, dtype=torch.float64)
        mask[..., 1:3, 2:5] = 1.0
        mean, std = SF.masked_mean_std(x, mask, eps=0.0)
        sel = x[:, :, 1:3, 2:5].contiguous()
        r_mean, r_std = ref_mean_std(sel, eps=0.0)
        _close(mean, r_mean)
        _close(std, r_std)
        # values outside the mask must not matter
        x2 = x.clone()
        x2[..., 0, :] = 1e3
        mean2, std2 = SF.masked_mean_std(x2, mask, eps=0.0)
        _close(mean2, r_mean)
        _close(std2, r_std)

    def test_hand_computed_soft(self):
        x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
        mask = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]], dtype=torch.float64)
        mean, std = SF.masked_mean_std(x, mask, eps=0.0)
        m = (1 * 1 + 0.5 * 3) / 1.5  # 5/3
        v = (1 * (1 - m) ** 2 + 0.5 * (3 - m) ** 2) / 1.5  # 8/9
        _close(mean, [[[[m]]]])
        _close(std, [[[[math.sqrt(v)]]]])
        assert abs(m - 5 / 3) < 1e-12 and abs(v - 8 / 9) < 1e-12

    def test_mask_scale_invariance(self):
        x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        mask = torch.rand(2, 1, 4, 4, dtype=torch.float64)
        m1, s1 = SF.masked_mean_std(x, mask)
        m2, s2 = SF.masked_mean_std(x, mask * 0.25)
        _close(m1, m2)
        _close(s1, s2)

    def test_gradcheck(self):
        x = torch.randn(2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
        mask = (torch.rand(2, 1, 3, 4, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, m: SF.masked_mean_std(a, m), (x, mask))

    def test_all_black_mask_raises(self):
        x = torch.randn(1, 3, 4, 4)
        with pytest.raises(StylekitError, match="black|selects no"):
            SF.masked_mean_std(x, torch.zeros(1, 1, 4, 4))

    def test_one_black_sample_in_batch_raises(self):
        x = torch.randn(2, 3, 4, 4)
        mask = torch.ones(2, 1, 4, 4)
        mask[1] = 0
        with pytest.raises(StylekitError, match="black|selects no"):
            SF.masked_mean_std(x, mask)

    @pytest.mark.parametrize(
        "mask_shape",
        [(1, 1, 4, 5), (1, 1, 3, 4), (1, 2, 4, 4), (2, 1, 4, 4), (1, 3, 4, 4)],
    )
    def test_wrong_mask_size_raises(self, mask_shape):
        x = torch.randn(1, 3, 4, 4)
        with pytest.raises(StylekitError, match="mask must have shape"):
            SF.masked_mean_std(x, torch.ones(mask_shape))

    def test_wrong_ndim_raises(self):
        with pytest.raises(StylekitError, match="mask must"):
            SF.masked_mean_std(torch.randn(1, 3, 4, 4), torch.ones(1, 4, 4))
        with pytest.raises(StylekitError, match="x must"):
            SF.masked_mean_std(torch.randn(3, 4, 4), torch.ones(1, 1, 4, 4))


# ---------------------------------------------------------------------------
# batch_norm
# ---------------------------------------------------------------------------


class TestBatchNorm:
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("affine", [False, True])
    def test_matches_reference_float64(self, shape, affine):
        x = torch.randn(shape, dtype=torch.float64) * 2 + 0.5
        c = shape[1]
        w = torch.randn(c, dtype=torch.float64) if affine else None
        b = torch.randn(c, dtype=torch.float64) if affine else None
        out = SF.batch_norm(x, w, b)
        assert out.shape == x.shape and out.dtype == torch.float64
        _close(out, ref_batch_norm(x, w, b))

    def test_float32_matches_reference(self):
        x = torch.randn(3, 4, 5, 3) * 4
        w, b = torch.randn(4), torch.randn(4)
        out = SF.batch_norm(x, w, b)
        assert out.dtype == torch.float32
        _close(out, ref_batch_norm(x, w, b), **F32)

    @pytest.mark.parametrize("shape", [(4, 3, 5, 7), (2, 2, 3, 1), (3, 5, 2, 2)])
    def test_matches_torch_batchnorm2d(self, shape):
        x = torch.randn(shape, dtype=torch.float64)
        c = shape[1]
        bn = nn.BatchNorm2d(c, eps=1e-3).double().train()
        with torch.no_grad():
            bn.weight.copy_(torch.randn(c))
            bn.bias.copy_(torch.randn(c))
        expected = bn(x)
        out = SF.batch_norm(x, bn.weight, bn.bias, eps=1e-3)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
        expected_f = F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=1e-3)
        torch.testing.assert_close(out, expected_f, rtol=1e-10, atol=1e-10)

    def test_hand_computed_single(self):
        _close(SF.batch_norm(HAND, eps=0.0), HAND_NORMED)

    def test_hand_computed_stats_across_batch(self):
        # sample 0 all zeros, sample 1 all twos: batch mean 1, var 1 -> -1 and +1
        x = torch.zeros(2, 1, 2, 3, dtype=torch.float64)
        x[1] = 2.0
        out = SF.batch_norm(x, eps=0.0)
        _close(out[0], -torch.ones(1, 2, 3))
        _close(out[1], torch.ones(1, 2, 3))

    def test_hand_computed_affine(self):
        w = torch.tensor([3.0], dtype=torch.float64)
        b = torch.tensor([-1.0], dtype=torch.float64)
        _close(SF.batch_norm(HAND, w, b, eps=0.0), HAND_NORMED * 3 - 1)

    def test_normalised_output_statistics(self):
        x = torch.randn(3, 4, 5, 6, dtype=torch.float64) * 5 + 2
        out = SF.batch_norm(x, eps=0.0)
        mean = out.mean(dim=(0, 2, 3))
        var = out.var(dim=(0, 2, 3), unbiased=False)
        _close(mean, torch.zeros(4))
        _close(var, torch.ones(4))

    def test_eps_value_matters(self):
        out = SF.batch_norm(HAND, eps=0.75)
        _close(out, (HAND - 2.5) / math.sqrt(2.0))

    def test_gradcheck(self):
        x = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
        w = torch.randn(3, dtype=torch.float64, requires_grad=True)
        b = torch.randn(3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(SF.batch_norm, (x, w, b))

    def test_errors(self):
        x = torch.randn(2, 3, 4, 4)
        with pytest.raises(StylekitError, match="x must have shape"):
            SF.batch_norm(torch.randn(3, 4, 4))
        with pytest.raises(StylekitError, match="x must have shape"):
            SF.batch_norm(torch.randn(2, 3))
        with pytest.raises(StylekitError, match="floating"):
            SF.batch_norm(torch.ones(2, 3, 4, 4, dtype=torch.int32))
        with pytest.raises(StylekitError, match="weight must have shape"):
            SF.batch_norm(x, torch.ones(4), torch.zeros(3))
        with pytest.raises(StylekitError, match="weight must have shape"):
            SF.batch_norm(x, torch.ones(1, 3))
        with pytest.raises(StylekitError, match="bias must have shape"):
            SF.batch_norm(x, torch.ones(3), torch.zeros(2))
        with pytest.raises(StylekitError, match="bias must have shape"):
            SF.batch_norm(x, None, torch.zeros(3, 1))


# ---------------------------------------------------------------------------
# instance_norm
# ---------------------------------------------------------------------------


class TestInstanceNorm:
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("affine", [False, True])
    def test_matches_reference_float64(self, shape, affine):
        x = torch.randn(shape, dtype=torch.float64) * 2 - 1
        c = shape[1]
        w = torch.randn(c, dtype=torch.float64) if affine else None
        b = torch.randn(c, dtype=torch.float64) if affine else None
        out = SF.instance_norm(x, w, b)
        assert out.shape == x.shape
        _close(out, ref_instance_norm(x, w, b))

    def test_float32_matches_reference(self):
        x = torch.randn(2, 3, 7, 4) * 3
        w, b = torch.randn(3), torch.randn(3)
        out = SF.instance_norm(x, w, b)
        assert out.dtype == torch.float32
        _close(out, ref_instance_norm(x, w, b), **F32)

    @pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 3, 3), (3, 2, 2, 5)])
    def test_matches_torch_instancenorm2d(self, shape):
        x = torch.randn(shape, dtype=torch.float64)
        c = shape[1]
        inorm = nn.InstanceNorm2d(c, affine=True, eps=1e-4).double()
        with torch.no_grad():
            inorm.weight.copy_(torch.randn(c))
            inorm.bias.copy_(torch.randn(c))
        out = SF.instance_norm(x, inorm.weight, inorm.bias, eps=1e-4)
        torch.testing.assert_close(out, inorm(x), rtol=1e-10, atol=1e-10)
        expected_f = F.instance_norm(x, weight=inorm.weight, bias=inorm.bias, eps=1e-4)
        torch.testing.assert_close(out, expected_f, rtol=1e-10, atol=1e-10)

    def test_hand_computed_eps0(self):
        _close(SF.instance_norm(HAND, eps=0.0), HAND_NORMED)

    def test_hand_computed_default_eps(self):
        expected = (HAND - 2.5) / math.sqrt(1.25 + 1e-5)
        _close(SF.instance_norm(HAND), expected)

    def test_samples_are_independent(self):
        x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
        out = SF.instance_norm(x)
        x2 = x.clone()
        x2[1] = x2[1] * 10 + 3
        out2 = SF.instance_norm(x2)
        _close(out2[0], out[0])
        # sample 1 is an affine transform of itself -> same normalised map (eps aside)
        torch.testing.assert_close(out2[1], out[1], rtol=1e-4, atol=1e-4)

    def test_differs_from_batch_norm(self):
        x = torch.zeros(2, 1, 2, 3, dtype=torch.float64)
        x[1] = 2.0
        out = SF.instance_norm(x, eps=1e-12)
        _close(out, torch.zeros_like(x))

    def test_gradcheck(self):
        x = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
        w = torch.randn(3, dtype=torch.float64, requires_grad=True)
        b = torch.randn(3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(SF.instance_norm, (x, w, b))

    def test_errors(self):
        x = torch.randn(2, 3, 4, 4)
        with pytest.raises(StylekitError, match="x must have shape"):
            SF.instance_norm(torch.randn(3, 4, 4))
        with pytest.raises(StylekitError, match="weight must have shape"):
            SF.instance_norm(x, torch.ones(2))
        with pytest.raises(StylekitError, match="bias must have shape"):
            SF.instance_norm(x, torch.ones(3), torch.zeros(4))
        with pytest.raises(StylekitError, match="floating"):
            SF.instance_norm(torch.ones(2, 3, 4, 4, dtype=torch.int64))


# ---------------------------------------------------------------------------
# conditional_instance_norm
# ---------------------------------------------------------------------------


class TestConditionalInstanceNorm:
    @pytest.mark.parametrize("shape,s", [((2, 3, 5, 7), 4), ((1, 2, 3, 1), 1), ((3, 4, 2, 3), 2)])
    def test_soft_weights_match_reference(self, shape, s):
        n, c = shape[:2]
        x = torch.randn(shape, dtype=torch.float64)
        sw = torch.rand(n, s, dtype=torch.float64)
        w = torch.randn(s, c, dtype=torch.float64)
        b = torch.randn(s, c, dtype=torch.float64)
        out = SF.conditional_instance_norm(x, sw, w, b)
        assert out.shape == x.shape
        _close(out, ref_conditional_instance_norm(x, sw, w, b))

    def test_float32_matches_reference(self):
        x = torch.randn(2, 3, 4, 5)
        sw = torch.rand(2, 3)
        w, b = torch.randn(3, 3), torch.randn(3, 3)
        out = SF.conditional_instance_norm(x, sw, w, b)
        _close(out, ref_conditional_instance_norm(x, sw, w, b), **F32)

    def test_one_hot_picks_row(self):
        x = torch.randn(3, 4, 5, 3, dtype=torch.float64)
        w = torch.randn(3, 4, dtype=torch.float64)
        b = torch.randn(3, 4, dtype=torch.float64)
        idx = [2, 0, 1]
        sw = torch.zeros(3, 3, dtype=torch.float64)
        sw[range(3), idx] = 1.0
        out = SF.conditional_instance_norm(x, sw, w, b)
        for i, s in enumerate(idx):
            _close(out[i : i + 1], ref_instance_norm(x[i : i + 1], w[s], b[s]))

    def test_blend_is_linear_in_affine_params(self):
        x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
        w = torch.randn(2, 3, dtype=torch.float64)
        b = torch.randn(2, 3, dtype=torch.float64)
        sw = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
        out = SF.conditional_instance_norm(x, sw, w, b)
        wb = 0.3 * w[0] + 0.7 * w[1]
        bb = 0.3 * b[0] + 0.7 * b[1]
        _close(out, ref_instance_norm(x, wb, bb))
        # convex blend of outputs equals output of blended params (linear in gamma/beta)
        o0 = SF.conditional_instance_norm(x, torch.tensor([[1.0, 0.0]], dtype=torch.float64), w, b)
        o1 = SF.conditional_instance_norm(x, torch.tensor([[0.0, 1.0]], dtype=torch.float64), w, b)
        _close(out, 0.3 * o0 + 0.7 * o1)

    def test_hand_computed(self):
        w = torch.tensor([[2.0], [-1.0]], dtype=torch.float64)
        b = torch.tensor([[10.0], [0.0]], dtype=torch.float64)
        out0 = SF.conditional_instance_norm(HAND, torch.tensor([[1.0, 0.0]], dtype=torch.float64), w, b, eps=0.0)
        _close(out0, HAND_NORMED * 2 + 10)
        out1 = SF.conditional_instance_norm(HAND, torch.tensor([[0.0, 1.0]], dtype=torch.float64), w, b, eps=0.0)
        _close(out1, -HAND_NORMED)
        outh = SF.conditional_instance_norm(HAND, torch.tensor([[0.5, 0.5]], dtype=torch.float64), w, b, eps=0.0)
        _close(outh, HAND_NORMED * 0.5 + 5)

    def test_gradcheck(self):
        x = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
        sw = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
        w = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
        b = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(SF.conditional_instance_norm, (x, sw, w, b))

    def test_errors(self):
        x = torch.randn(2, 3, 4, 4)
        sw = torch.ones(2, 5) / 5
        w, b = torch.ones(5, 3), torch.zeros(5, 3)
        SF.conditional_instance_norm(x, sw, w, b)  # valid call
        with pytest.raises(StylekitError, match="x must have shape"):
            SF.conditional_instance_norm(torch.randn(3, 4, 4), sw, w, b)
        with pytest.raises(StylekitError, match="weight must have shape"):
            SF.conditional_instance_norm(x, sw, torch.ones(3), b)
        with pytest.raises(StylekitError, match="weight must have shape"):
            SF.conditional_instance_norm(x, sw, torch.ones(5, 4), torch.zeros(5, 4))
        with pytest.raises(StylekitError, match="bias must have shape"):
            SF.conditional_instance_norm(x, sw, w, torch.zeros(5, 2))
        with pytest.raises(StylekitError, match="bias must have shape"):
            SF.conditional_instance_norm(x, sw, w, torch.zeros(4, 3))
        with pytest.raises(StylekitError, match="style_weights must have shape"):
            SF.conditional_instance_norm(x, torch.ones(2, 4), w, b)
        with pytest.raises(StylekitError, match="style_weights must have shape"):
            SF.conditional_instance_norm(x, torch.ones(3, 5), w, b)
        with pytest.raises(StylekitError, match="style_weights must have shape"):
            SF.conditional_instance_norm(x, torch.ones(5), w, b)


# ---------------------------------------------------------------------------
# adain / adain_from_stats
# ---------------------------------------------------------------------------


class TestAdaIN:
    @pytest.mark.parametrize(
        "c_shape,s_hw",
        [((2, 3, 5, 7), (4, 6)), ((1, 2, 3, 3), (7, 2)), ((3, 1, 2, 5), (1, 9)), ((2, 4, 6, 1), (6, 1))],
    )
    def test_matches_reference_float64(self, c_shape, s_hw):
        content = torch.randn(c_shape, dtype=torch.float64) * 2 + 1
        style = torch.randn(c_shape[0], c_shape[1], *s_hw, dtype=torch.float64) * 3 - 2
        out = SF.adain(content, style)
        assert out.shape == content.shape
        _close(out, ref_adain(content, style))

    def test_float32_matches_reference(self):
        content = torch.randn(2, 3, 5, 4)
        style = torch.randn(2, 3, 3, 7) * 2 + 1
        out = SF.adain(content, style)
        assert out.dtype == torch.float32
        _close(out, ref_adain(content, style), **F32)

    def test_output_takes_style_statistics_eps0(self):
        content = torch.randn(2, 3, 5, 6, dtype=torch.float64) * 4 + 3
        style = torch.randn(2, 3, 7, 3, dtype=torch.float64) * 0.5 - 1
        out = SF.adain(content, style, eps=0.0)
        o_mean = out.mean(dim=(2, 3))
        o_std = out.var(dim=(2, 3), unbiased=False).sqrt()
        s_mean = style.mean(dim=(2, 3))
        s_std = style.var(dim=(2, 3), unbiased=False).sqrt()
        torch.testing.assert_close(o_mean, s_mean, rtol=0, atol=1e-6)
        torch.testing.assert_close(o_std, s_std, rtol=0, atol=1e-6)

    def test_output_statistics_with_eps(self):
        eps = 0.1
        content = torch.randn(1, 2, 4, 5, dtype=torch.float64)
        style = torch.randn(1, 2, 3, 3, dtype=torch.float64) * 2
        out = SF.adain(content, style, eps=eps)
        c_var = content.var(dim=(2, 3), unbiased=False)
        s_var = style.var(dim=(2, 3), unbiased=False)
        expected_std = torch.sqrt(s_var + eps) * torch.sqrt(c_var) / torch.sqrt(c_var + eps)
        torch.testing.assert_close(out.var(dim=(2, 3), unbiased=False).sqrt(), expected_std, rtol=0, atol=1e-10)
        torch.testing.assert_close(out.mean(dim=(2, 3)), style.mean(dim=(2, 3)), rtol=0, atol=1e-10)

    def test_hand_computed(self):
        style = torch.tensor([[[[10.0, 10.0, 20.0, 20.0]]]], dtype=torch.float64)  # mean 15, std 5
        out = SF.adain(HAND, style, eps=0.0)
        _close(out, HAND_NORMED * 5 + 15)

    def test_self_transfer_is_identity(self):
        x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
        _close(SF.adain(x, x), x)

    def test_per_sample_statistics(self):
        content = torch.randn(2, 2, 4, 4, dtype=torch.float64)
        style = torch.randn(2, 2, 3, 3, dtype=torch.float64)
        out = SF.adain(content, style)
        style2 = style.clone()
        style2[1] = style2[1] * 5 + 7
        out2 = SF.adain(content, style2)
        _close(out2[0], out[0])
        assert not torch.allclose(out2[1], out[1])

    def test_gradcheck(self):
        content = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
        style = torch.randn(2, 2, 2, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(SF.adain, (content, style))

    def test_errors(self):
        c = torch.randn(2, 3, 4, 4)
        with pytest.raises(StylekitError, match="same batch size and channels"):
            SF.adain(c, torch.randn(2, 4, 4, 4))
        with pytest.raises(StylekitError, match="same batch size and channels"):
            SF.adain(c, torch.randn(1, 3, 4, 4))
        with pytest.raises(StylekitError, match="content must"):
            SF.adain(torch.randn(3, 4, 4), torch.randn(2, 3, 4, 4))
        with pytest.raises(StylekitError, match="style must"):
            SF.adain(c, torch.randn(3, 4, 4))
        with pytest.raises(StylekitError, match="style must"):
            SF.adain(c, torch.ones(2, 3, 4, 4, dtype=torch.int64))


class TestAdaINFromStats:
    def test_matches_reference(self):
        content = torch.randn(2, 3, 5, 4, dtype=torch.float64)
        s_mean = torch.randn(2, 3, 1, 1, dtype=torch.float64)
        s_std = torch.rand(2, 3, 1, 1, dtype=torch.float64) + 0.5
        out = SF.adain_from_stats(content, s_mean, s_std)
        _close(out, ref_adain_from_stats(content, s_mean, s_std))

    def test_hand_computed(self):
        out = SF.adain_from_stats(
            HAND,
            torch.tensor([[[[-3.0]]]], dtype=torch.float64),
            torch.tensor([[[[0.5]]]], dtype=torch.float64),
            eps=0.0,
        )
        _close(out, HAND_NORMED * 0.5 - 3)

    def test_equals_adain_with_style_stats(self):
        content = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        style = torch.randn(2, 3, 6, 5, dtype=torch.float64)
        r_mean, r_std = ref_mean_std(style, eps=1e-5)
        out = SF.adain_from_stats(content, torch.from_numpy(r_mean), torch.from_numpy(r_std))
        _close(out, SF.adain(content, style))
        _close(out, ref_adain(content, style))

    def test_broadcast_single_style(self):
        content = torch.randn(3, 2, 4, 5, dtype=torch.float64)
        s_mean = torch.randn(1, 2, 1, 1, dtype=torch.float64)
        s_std = torch.rand(1, 2, 1, 1, dtype=torch.float64) + 0.1
        out = SF.adain_from_stats(content, s_mean, s_std)
        expanded = SF.adain_from_stats(content, s_mean.expand(3, 2, 1, 1), s_std.expand(3, 2, 1, 1))
        _close(out, expanded)
        _close(out, ref_adain_from_stats(content, s_mean, s_std))

    def test_gradcheck(self):
        content = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
        s_mean = torch.randn(2, 2, 1, 1, dtype=torch.float64, requires_grad=True)
        s_std = (torch.rand(2, 2, 1, 1, dtype=torch.float64) + 0.5).requires_grad_()
        assert torch.autograd.gradcheck(SF.adain_from_stats, (content, s_mean, s_std))

    @pytest.mark.parametrize("bad_shape", [(3,), (2, 3), (2, 4, 1, 1), (3, 3, 1, 1), (2, 3, 2, 1), (2, 3, 1)])
    def test_wrong_stat_shape_raises(self, bad_shape):
        content = torch.randn(2, 3, 4, 4)
        good = torch.ones(2, 3, 1, 1)
        with pytest.raises(StylekitError, match="style_mean must have shape"):
            SF.adain_from_stats(content, torch.ones(bad_shape), good)
        with pytest.raises(StylekitError, match="style_std must have shape"):
            SF.adain_from_stats(content, good, torch.ones(bad_shape))

    def test_content_ndim_raises(self):
        with pytest.raises(StylekitError, match="content must"):
            SF.adain_from_stats(torch.randn(3, 4, 4), torch.ones(1, 3, 1, 1), torch.ones(1, 3, 1, 1))


# ---------------------------------------------------------------------------
# spade_modulation
# ---------------------------------------------------------------------------


class TestSpadeModulation:
    @pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 3, 1), (3, 4, 2, 2)])
    def test_matches_reference_float64(self, shape):
        x = torch.randn(shape, dtype=torch.float64) * 2 + 1
        gamma = torch.randn(shape, dtype=torch.float64)
        beta = torch.randn(shape, dtype=torch.float64)
        out = SF.spade_modulation(x, gamma, beta)
        _close(out, ref_spade(x, gamma, beta))

    def test_float32_matches_reference(self):
        x, gamma, beta = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
        _close(SF.spade_modulation(x, gamma, beta), ref_spade(x, gamma, beta), **F32)

    def test_zero_modulation_is_plain_batch_norm(self):
        x = torch.randn(3, 2, 4, 3, dtype=torch.float64)
        z = torch.zeros_like(x)
        _close(SF.spade_modulation(x, z, z), ref_batch_norm(x))

    def test_hand_computed(self):
        gamma = torch.tensor([[[[0.0, 1.0], [-1.0, 2.0]]]], dtype=torch.float64)
        beta = torch.tensor([[[[5.0, 0.0], [0.0, -5.0]]]], dtype=torch.float64)
        out = SF.spade_modulation(HAND, gamma, beta, eps=0.0)
        xn = HAND_NORMED[0, 0]
        expected = torch.tensor(
            [[[[xn[0, 0] * 1 + 5, xn[0, 1] * 2], [xn[1, 0] * 0, xn[1, 1] * 3 - 5]]]], dtype=torch.float64
        )
        _close(out, expected)

    def test_uses_batch_not_instance_statistics(self):
        x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
        x[1] = 4.0
        z = torch.zeros_like(x)
        out = SF.spade_modulation(x, z, z, eps=0.0)
        _close(out[0], -torch.ones(1, 2, 2))
        _close(out[1], torch.ones(1, 2, 2))

    def test_gradcheck(self):
        x = torch.randn(2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
        gamma = torch.randn(2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
        beta = torch.randn(2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(SF.spade_modulation, (x, gamma, beta))

    def test_errors(self):
        x = torch.randn(2, 3, 4, 4)
        good = torch.zeros(2, 3, 4, 4)
        with pytest.raises(StylekitError, match="gamma and beta"):
            SF.spade_modulation(x, torch.zeros(2, 3, 4, 5), good)
        with pytest.raises(StylekitError, match="gamma and beta"):
            SF.spade_modulation(x, good, torch.zeros(2, 2, 4, 4))
        with pytest.raises(StylekitError, match="gamma and beta"):
            SF.spade_modulation(x, torch.zeros(1, 3, 4, 4), good)  # broadcastable but not equal
        with pytest.raises(StylekitError, match="x must have shape"):
            SF.spade_modulation(torch.randn(3, 4, 4), torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))

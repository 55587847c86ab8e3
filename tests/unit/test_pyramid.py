"""The coarse-to-fine pyramid, the palette step and the stroke-scale control."""

from __future__ import annotations

import pytest
import torch

from stylekit.color import transfer_palette
from stylekit.errors import StylekitError
from stylekit.measures import colour_distance
from stylekit.pipeline import Stylizer
from stylekit.pyramid import band_gain, coarse_to_fine, detail_band, plan_levels


def test_levels_for_a_512_picture():
    levels = plan_levels(341, 512)
    assert [lv.size for lv in levels] == [(85, 128), (170, 256), (341, 512)]
    assert [lv.style_scale for lv in levels] == [0.25, 0.5, 1.0]


def test_levels_for_2048_share_the_512_levels_and_never_enlarge_the_style():
    levels = plan_levels(2048, 2048)
    assert [lv.size for lv in levels] == [(128, 128), (256, 256), (512, 512), (1024, 1024), (2048, 2048)]
    assert [lv.style_scale for lv in levels] == [0.25, 0.5, 1.0, 1.0, 1.0]


def test_stroke_scale_scales_the_style_down_relative_to_the_picture():
    assert [lv.style_scale for lv in plan_levels(512, 512, 2.0)] == [0.125, 0.25, 0.5]
    assert [lv.style_scale for lv in plan_levels(512, 512, 0.5)] == [0.5, 1.0, 1.0]


def test_small_pictures_have_one_level():
    assert [lv.size for lv in plan_levels(100, 120)] == [(100, 120)]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "2"])
def test_stroke_scale_must_be_positive_and_finite(bad):
    with pytest.raises(StylekitError, match="stroke_scale"):
        plan_levels(64, 64, bad)


def test_detail_band_of_a_flat_image_is_zero():
    assert torch.count_nonzero(detail_band(torch.full((1, 3, 16, 20), 0.3))) == 0


def test_coarse_to_fine_keeps_the_coarse_output_and_adds_the_finer_detail():
    """Hand-written two-level composition with a stylizer that inverts colours."""
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 32, 32, generator=g)
    levels = plan_levels(32, 32, coarsest=16)
    assert [lv.size for lv in levels] == [(16, 16), (32, 32)]
    calls = []

    def invert(image, i):
        calls.append((i, tuple(image.shape[-2:])))
        return 1 - image

    out = coarse_to_fine(invert, content, levels, content_mix=0.25, detail=0.0)
    small = torch.nn.functional.avg_pool2d(content, 2)
    coarse = 1 - small
    up = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    y = 1 - (0.75 * up + 0.25 * content)
    low = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(y, 2), size=(32, 32), mode="bilinear",
                                          align_corners=False)
    assert calls == [(0, (16, 16)), (1, (32, 32))]
    assert torch.allclose(out, (up + y - low).clamp(0, 1), atol=1e-6)



def test_band_gain_raises_a_weak_band_to_the_target_and_never_flattens_one():
    # a +-a checkerboard has mean 0 and standard deviation exactly a
    board = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1
    band = torch.stack([0.1 * board, 0.4 * board, 0.01 * board])[None]
    target = torch.tensor([0.2, 0.2, 0.2]).view(1, 3, 1, 1)
    gain = band_gain(band, target, max_gain=3.0)
    assert torch.allclose(gain.flatten(), torch.tensor([2.0, 1.0, 3.0]))  # raised, kept, capped


def test_a_weaker_level_band_is_raised_to_the_style_contrast():
    """The two-level composition by hand, the finer band multiplied by its gain."""
    g = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, 32, 32, generator=g) * 0.5 + 0.25
    levels = plan_levels(32, 32, coarsest=16)
    target = torch.tensor([0.05, 0.5, 0.0]).view(1, 3, 1, 1)
    out = coarse_to_fine(lambda image, i: image, content, levels, content_mix=0.5, detail=0.0,
                         style_contrast=lambda i: target)
    up = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(content, 2), size=(32, 32), mode="bilinear",
                                         align_corners=False)
    band = detail_band(0.5 * up + 0.5 * content)
    gain = (target / band.std(dim=(2, 3), keepdim=True, correction=0)).clamp(1.0, 2.0)
    assert gain.flatten()[1] == 2.0 and gain.flatten()[2] == 1.0
    assert torch.allclose(out, (up + gain * band).clamp(0, 1), atol=1e-6)

def test_photo_detail_joins_every_band_from_the_reference_scale_up():
    """With a stylizer that returns flat grey, every band is flat, so the output's
    detail is exactly the photo's luma detail wherever the rule mixes it in."""
    g = torch.Generator().manual_seed(3)
    content = torch.rand(1, 3, 64, 64, generator=g)

    def grey(image, i):
        return torch.full_like(image, 0.5)

    def luma_detail(x):
        return detail_band(0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])

    def run(levels):
        out = coarse_to_fine(grey, content, levels, content_mix=0.5, detail=0.25)
        return out - 0.5  # the flat grey of every level, removed

    # style at its own size from the 32 px level up: that level and the finest take the photo's detail
    reference = plan_levels(64, 64, coarsest=16, reference=32)
    assert [lv.style_scale for lv in reference] == [0.5, 1.0, 1.0]
    small = torch.nn.functional.interpolate(content, size=(32, 32), mode="area")
    up = torch.nn.functional.interpolate(0.25 * luma_detail(small), size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(run(reference), up + 0.25 * luma_detail(content), atol=1e-6)
    # the style below its own size everywhere: only the finest level does
    finest_only = plan_levels(64, 64, coarsest=16, reference=256)
    assert max(lv.style_scale for lv in finest_only) < 1.0
    assert torch.allclose(run(finest_only), 0.25 * luma_detail(content), atol=1e-6)


def test_palette_transfer_takes_the_target_palette():
    g = torch.Generator().manual_seed(1)
    source = torch.rand(3, 32, 32, generator=g) * torch.tensor([1.0, 0.3, 0.2]).view(3, 1, 1)  # reddish
    target = torch.rand(3, 24, 40, generator=g) * torch.tensor([0.2, 0.4, 1.0]).view(3, 1, 1)  # bluish
    out = transfer_palette(source, target)
    assert out.shape == source.shape
    assert colour_distance(out, target) < 0.1 * colour_distance(source, target)
    assert torch.equal(out, transfer_palette(source, target))  # seeded: deterministic


def test_palette_transfer_is_a_map_of_colours_not_of_positions():
    g = torch.Generator().manual_seed(2)
    source, target = torch.rand(3, 32, 32, generator=g), torch.rand(3, 16, 16, generator=g) ** 2
    order = torch.randperm(32 * 32, generator=g)
    shuffled = source.reshape(3, -1)[:, order].reshape(3, 32, 32)
    out, out_shuffled = transfer_palette(source, target), transfer_palette(shuffled, target)
    # all 1024 pixels are below the sample count: the same colours give the same quantiles, whatever their places
    assert torch.allclose(out.reshape(3, -1)[:, order], out_shuffled.reshape(3, -1), atol=1e-6)


def test_palette_transfer_of_a_batch_is_each_image_alone():
    g = torch.Generator().manual_seed(5)
    source, target = torch.rand(3, 3, 40, 30, generator=g), torch.rand(3, 3, 50, 50, generator=g) ** 2
    batch = transfer_palette(source, target)
    for i in range(3):
        assert torch.equal(batch[i], transfer_palette(source[i], target[i]))
    with pytest.raises(StylekitError, match="batches"):
        transfer_palette(source, target[:2])
    with pytest.raises(StylekitError, match="batches"):
        transfer_palette(source, target[0])


class Recorder(Stylizer):
    """A stylizer that returns its content and records what each pass is given."""

    method = "recorder"
    device = torch.device("cpu")

    def __init__(self):
        self.calls = []

    def prepare_style(self, style):
        return style

    def transfer_prepared(self, content, prepared, weights, masks, alpha):
        self.calls.append((tuple(content.shape[-2:]), [tuple(s.shape[-2:]) for s in prepared],
                           None if masks is None else [tuple(m.shape[-2:]) for m in masks]))
        return content


def test_stroke_scale_runs_each_level_with_the_style_scaled_like_the_picture():
    model = Recorder()
    content, style = torch.rand(3, 256, 512), torch.rand(3, 400, 400)
    model.stylize(content, style, size=0, style_size=0, stroke_scale=1.0)
    assert [c[0] for c in model.calls] == [(64, 128), (128, 256), (256, 512)]
    assert [c[1] for c in model.calls] == [[(100, 100)], [(200, 200)], [(400, 400)]]
    model.calls.clear()
    model.stylize(content, style, size=0, style_size=0, stroke_scale=2.0)
    assert [c[1] for c in model.calls] == [[(64, 64)], [(100, 100)], [(200, 200)]]  # the style stops at 64 px


def test_stroke_scale_zero_is_one_pass_and_masks_follow_the_levels():
    model = Recorder()
    content, style = torch.rand(3, 256, 256), torch.rand(3, 128, 128)
    out = model.stylize(content, [style, style], size=0, style_size=0, stroke_scale=0)
    assert len(model.calls) == 1 and torch.equal(out, content)
    model.calls.clear()
    mask = torch.zeros(1, 256, 256)
    mask[:, :, :128] = 1
    model.stylize(content, [style, style], masks=[mask, 1 - mask], size=0, style_size=0, stroke_scale=1.0)
    assert [c[2] for c in model.calls] == [[(128, 128)] * 2, [(256, 256)] * 2]


@pytest.mark.parametrize("bad", [0.1, 5, -1, float("nan"), True])
def test_stylize_rejects_a_bad_stroke_scale(bad):
    with pytest.raises(StylekitError, match="stroke scale"):
        Recorder().stylize(torch.rand(3, 32, 32), torch.rand(3, 32, 32), size=0, style_size=0, stroke_scale=bad)


class MeanColour(Stylizer):
    """A stylizer that moves the content towards its style's mean colour by ``alpha``."""

    method = "mean-colour"
    device = torch.device("cpu")

    def prepare_style(self, style):
        return style.mean(dim=(2, 3), keepdim=True)

    def transfer_prepared(self, content, prepared, weights, masks, alpha):
        return content + alpha * (sum(w * p for w, p in zip(weights, prepared)) - content)


def test_a_batch_of_pairs_stylizes_each_content_with_its_own_style_and_alpha():
    model, g = MeanColour(), torch.Generator().manual_seed(3)
    content, style = torch.rand(3, 3, 256, 256, generator=g), torch.rand(3, 3, 96, 96, generator=g) ** 3
    alpha = torch.tensor([1.0, 0.25, 0.6])
    batch = model.transfer_coarse_to_fine(content, [style], alpha=alpha.view(-1, 1, 1, 1), stroke_scale=0.5)
    for i in range(3):
        pair = model.transfer_coarse_to_fine(content[i : i + 1], [style[i : i + 1]], alpha=float(alpha[i]), stroke_scale=0.5)
        assert torch.allclose(batch[i : i + 1], pair, atol=1e-6)
    # one style for the whole batch is each content with that style
    shared = model.transfer_coarse_to_fine(content, [style[:1]], stroke_scale=0.5)
    assert torch.allclose(shared[2:], model.transfer_coarse_to_fine(content[2:], [style[:1]], stroke_scale=0.5), atol=1e-6)


def test_the_style_contrast_follows_alpha():
    """At alpha 0 the stylizer keeps the content, and so does every band: no contrast is added from the style."""
    model, g = MeanColour(), torch.Generator().manual_seed(6)
    content = torch.rand(1, 3, 256, 256, generator=g) * 0.5 + 0.25
    board = ((torch.arange(128)[:, None] + torch.arange(128)[None, :]) % 2).float().expand(1, 3, 128, 128)
    levels = plan_levels(256, 256, 0.5)
    assert len(levels) == 2
    kept = model.transfer_coarse_to_fine(content, [board], alpha=0.0, stroke_scale=0.5)
    assert torch.allclose(kept, coarse_to_fine(lambda image, i: image, content, levels), atol=1e-6)
    styled = model.transfer_coarse_to_fine(content, [board], alpha=0.5, stroke_scale=0.5, palette=False)
    plain = coarse_to_fine(lambda image, i: model.transfer_prepared(image, [model.prepare_style(board)], [1.0], None, 0.5),
                           content, levels)
    assert detail_band(styled).std() > detail_band(plain).std()  # the board's contrast raised the finer band

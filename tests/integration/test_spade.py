"""SPADE: the layers against their formulas, the networks' shapes,
the losses by hand, label-map loading and its errors, the procedural dataset
and the per-class colour error."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.nn.utils import parametrize

from stylekit.errors import StylekitError
from stylekit.nn import SPADE
from stylekit.spade import losses as L
from stylekit.spade.data import LabelledBank, colourise, palette, read_label_map
from stylekit.spade.model import (
    ImageEncoder,
    MultiscaleDiscriminator,
    SPADEGenerator,
    SPADEModelConfig,
    SPADENet,
    SPADEResBlock,
    SyncBatchNorm,
    count_parameters,
    one_hot,
)
from stylekit.spade.synthesize import class_colour_error, global_mean_baseline
from stylekit.spade.synthetic import CLASSES, make_dataset, make_example




def _close(a, b, tol=1e-10):
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=tol, rtol=tol), (a - b).abs().max().item()


def _labels(n, h, w, classes, seed=0):
    return torch.randint(classes, (n, h, w), generator=torch.Generator().manual_seed(seed))


def _bn(x, eps=1e-5):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def spade_formula(layer: SPADE, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
    """SPADE written out: batch norm without affine, then (1 + gamma) * x + beta with
    gamma, beta from the label map resized (nearest) to x's size."""
    resized = F.interpolate(label_map, size=x.shape[2:], mode="nearest")
    conv = layer.shared[0]
    hidden = F.relu(F.conv2d(resized, conv.weight, conv.bias, padding=1))
    gamma = F.conv2d(hidden, layer.gamma.weight, layer.gamma.bias, padding=1)
    beta = F.conv2d(hidden, layer.beta.weight, layer.beta.bias, padding=1)
    return _bn(x, layer.eps) * (1 + gamma) + beta


def _leaky(x):
    return torch.where(x > 0, x, 0.2 * x)


def _conv(module, x):
    """A (possibly spectral-normed) conv applied by hand with its effective weight."""
    pad = module.padding
    return F.conv2d(x, module.weight, module.bias, stride=module.stride, padding=pad)


# ---------------------------------------------------------------------------
# SPADE layer and residual block
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("x_hw,label_hw", [((4, 4), (32, 32)), ((8, 8), (32, 32)), ((16, 16), (32, 32)),
                                             ((32, 32), (32, 32)), ((8, 6), (64, 48)), ((16, 12), (8, 6))])
def test_spade_layer_is_its_formula_at_every_scale(x_hw, label_hw):
    torch.manual_seed(0)
    layer = SPADE(5, 3, hidden=7).double()
    x = torch.randn(3, 5, *x_hw, dtype=torch.float64) * 2 + 0.5
    label_map = one_hot(_labels(3, *label_hw, classes=3), 3, torch.float64)
    _close(layer(x, label_map), spade_formula(layer, x, label_map))


@pytest.mark.parametrize("num_upsampling,label_hw", [(1, (8, 8)), (2, (16, 12)), (3, (32, 32)), (4, (32, 48))])
def test_every_spade_layer_of_the_generator_sees_the_label_map_at_its_scale(num_upsampling, label_hw):
    """Hooks on every SPADE layer: its output is the formula of its input and the
    full-size label map, and the layers run at every scale from coarsest to output."""
    torch.manual_seed(1)
    cfg = SPADEModelConfig(num_classes=3, size=2**num_upsampling * 2, width=4, num_upsampling=num_upsampling,
                           max_width=16, spade_hidden=5)
    gen = SPADEGenerator(cfg).double().train()
    label_map = one_hot(_labels(2, *label_hw, classes=3), 3, torch.float64)
    seen = []

    def hook(module, inputs, output):
        x, lab = inputs
        assert lab is label_map  # the full-size map; each layer resizes it itself
        _close(output, spade_formula(module, x, lab))
        seen.append(tuple(x.shape[2:]))

    for m in gen.modules():
        if isinstance(m, SPADE):
            m.register_forward_hook(hook)
    out = gen(label_map)
    assert out.shape == (2, 3, *label_hw)
    h, w = label_hw
    scales = {(h // 2**k, w // 2**k) for k in range(num_upsampling + 1)}
    assert set(seen) == scales


def test_resblock_is_its_formula_with_learned_shortcut():
    torch.manual_seed(2)
    block = SPADEResBlock(6, 4, label_channels=3, hidden=5).double().train()
    assert block.learned_shortcut and block.conv_s.bias is None and block.conv_s.kernel_size == (1, 1)
    x = torch.randn(2, 6, 8, 8, dtype=torch.float64)
    lab = one_hot(_labels(2, 16, 16, 3), 3, torch.float64)
    out = block(x, lab)
    # A training-mode forward runs one power iteration, then uses the updated u, v; in eval
    # mode the weights are computed from those u, v without iterating: the same weights.
    block.eval()
    dx = _conv(block.conv_0, _leaky(spade_formula(block.norm_0, x, lab)))
    assert dx.shape[1] == 4  # fmiddle = min(fin, fout)
    dx = _conv(block.conv_1, _leaky(spade_formula(block.norm_1, dx, lab)))
    shortcut = _conv(block.conv_s, spade_formula(block.norm_s, x, lab))
    assert out.shape == (2, 4, 8, 8)
    _close(out, shortcut + dx, tol=1e-8)


def test_resblock_identity_shortcut_when_channels_stay():
    torch.manual_seed(3)
    block = SPADEResBlock(5, 5, label_channels=2, hidden=4).double()
    assert not block.learned_shortcut and not hasattr(block, "conv_s") and not hasattr(block, "norm_s")
    with torch.no_grad():  # silence the residual branch: norm_1 outputs 0 (gamma = -1, beta = 0), conv_1 no bias
        for conv in (block.norm_1.gamma, block.norm_1.beta):
            conv.weight.zero_()
        block.norm_1.gamma.bias.fill_(-1.0)
        block.norm_1.beta.bias.zero_()
        block.conv_1.bias.zero_()
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64)
    _close(block(x, one_hot(_labels(2, 6, 6, 2), 2, torch.float64)), x)


def test_spectral_norm_on_the_block_convs():
    torch.manual_seed(4)
    block = SPADEResBlock(8, 16, label_channels=3, hidden=4)
    for name in ("conv_0", "conv_1", "conv_s"):
        assert parametrize.is_parametrized(getattr(block, name), "weight"), name
    for spade in (block.norm_0, block.norm_1, block.norm_s):  # as the paper's code: not on SPADE's own convs
        assert not parametrize.is_parametrized(spade.gamma, "weight")
    block(torch.randn(2, 8, 4, 4), one_hot(_labels(2, 4, 4, 3), 3))
    for _ in range(50):  # each training-mode use of a weight runs one power iteration
        for name in ("conv_0", "conv_1", "conv_s"):
            getattr(block, name).weight
    block.eval()
    for name in ("conv_0", "conv_1", "conv_s"):
        w = getattr(block, name).weight
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.02), name


# ---------------------------------------------------------------------------
# generator, encoder, discriminator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_upsampling,size,hw", [(1, 8, (8, 8)), (2, 16, (16, 24)), (3, 32, (32, 32)),
                                                    (3, 32, (64, 40)), (4, 64, (64, 64))])
def test_generator_shapes(num_upsampling, size, hw):
    torch.manual_seed(5)
    cfg = SPADEModelConfig(num_classes=4, size=size, width=4, num_upsampling=num_upsampling, max_width=16, spade_hidden=4)
    gen = SPADEGenerator(cfg)
    out = gen(one_hot(_labels(2, *hw, classes=4), 4))
    assert out.shape == (2, 3, *hw)
    assert out.abs().max() <= 1  # tanh
    assert len(gen.up) == num_upsampling - 1
    assert gen.conv_img.in_channels == 4 and gen.head.conv_0.in_channels == cfg.channels(0)


def test_generator_channels_follow_the_paper():
    cfg = SPADEModelConfig(num_classes=151)  # the defaults are the paper's 256 px generator
    assert [cfg.channels(level) for level in range(6)] == [1024, 1024, 512, 256, 128, 64]
    assert cfg.base == 8


def test_paper_sized_generator_has_the_papers_parameter_count():
    with torch.device("meta"):
        net = SPADENet(SPADEModelConfig(num_classes=151))
    assert count_parameters(net) / 1e6 == pytest.approx(96.5, abs=0.05)  # the paper's 96.5M


def test_generator_rejects_bad_inputs():
    cfg = SPADEModelConfig(num_classes=3, size=16, width=4, num_upsampling=2, spade_hidden=4)
    gen = SPADEGenerator(cfg)
    with pytest.raises(StylekitError, match="multiples of 4"):
        gen(one_hot(_labels(1, 10, 8, 3), 3))
    with pytest.raises(StylekitError, match="one-hot"):
        gen(one_hot(_labels(1, 8, 8, 2), 2))
    with pytest.raises(StylekitError, match="takes no z"):
        gen(one_hot(_labels(1, 8, 8, 3), 3), torch.randn(1, 256))
    with pytest.raises(StylekitError, match="multiple of"):
        SPADEModelConfig(num_classes=3, size=20, num_upsampling=3)
    with pytest.raises(StylekitError, match="classes"):
        SPADEModelConfig(num_classes=0)


def test_vae_generator_and_encoder():
    torch.manual_seed(6)
    cfg = SPADEModelConfig(num_classes=3, size=32, width=4, num_upsampling=3, max_width=16, spade_hidden=4, vae=True, z_dim=8)
    net = SPADENet(cfg)
    assert isinstance(net.generator.fc, torch.nn.Linear) and net.generator.fc.in_features == 8
    assert isinstance(net.encoder, ImageEncoder)
    seg, image, noise = one_hot(_labels(2, 32, 32, 3), 3), torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 8)
    fake, mu, logvar = net(seg, image, noise)
    assert fake.shape == (2, 3, 32, 32) and mu.shape == (2, 8) and logvar.shape == (2, 8)
    # z = mu + noise * exp(logvar / 2): zero noise gives the generator of mu
    net.eval()
    fake0, mu, logvar = net(seg, image, torch.zeros(2, 8))
    _close(fake0, net.generator(seg, mu), tol=1e-6)
    # without an image: z is the noise itself (a sample of the prior); other sizes stretch the coarse grid
    assert net(one_hot(_labels(1, 48, 64, 3), 3), None, torch.randn(1, 8))[0].shape == (1, 3, 48, 64)
    with pytest.raises(StylekitError, match="latent"):
        net.generator(seg)
    # the encoder resizes any image to the training size
    assert net.encoder(torch.rand(1, 3, 50, 70))[0].shape == (1, 8)


@pytest.mark.parametrize("hw,layers", [((64, 64), 4), ((32, 48), 3), ((16, 16), 4)])
def test_multiscale_discriminator_shapes(hw, layers):
    torch.manual_seed(7)
    disc = MultiscaleDiscriminator(num_classes=5, width=8, layers=layers, scales=2)
    assert disc.nets[0].stages[0][0].in_channels == 5 + 3  # concat(one-hot label map, image)
    out = disc(one_hot(_labels(2, *hw, classes=5), 5), torch.rand(2, 3, *hw))
    assert len(out) == 2 and all(len(stages) == layers + 1 for stages in out)

    def conv_out(n, stride):  # 4x4 conv, padding 2
        return (n + 4 - 4) // stride + 1

    for scale, stages in enumerate(out):
        h, w = hw
        for _ in range(scale):  # 3x3 average pool, stride 2, padding 1
            h, w = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
        widths = []
        for i, t in enumerate(stages):
            stride = 2 if i < layers - 1 else 1
            h, w = conv_out(h, stride), conv_out(w, stride)
            widths.append(t.shape[1])
            assert t.shape[0] == 2 and t.shape[2:] == (h, w), (scale, i)
        assert widths == [min(8 * 2**i, 512) for i in range(layers)] + [1]
    net = disc.nets[0]
    assert not parametrize.is_parametrized(net.stages[0][0], "weight")
    assert all(parametrize.is_parametrized(net.stages[i][0], "weight") for i in range(1, layers))
    assert isinstance(net.stages[1][1], torch.nn.InstanceNorm2d)


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------


def _outs(*score_lists, feats=None):
    """Discriminator outputs: one scale per score list; optional feature stages first."""
    return [[*(feats or []), torch.tensor(s, dtype=torch.float64).view(1, 1, 1, -1)] for s in score_lists]


def test_hinge_losses_by_hand():
    real = _outs([0.5, 2.0, -1.0], [1.0, 0.0])
    fake = _outs([-0.5, -2.0, 1.0], [0.0, -1.0])
    d_real, d_fake = L.hinge_d_loss(real, fake)
    # relu(1 - s): scale 1 [0.5, 0, 2] -> 2.5/3; scale 2 [0, 1] -> 0.5; averaged over the 2 scales
    assert d_real.item() == pytest.approx((2.5 / 3 + 0.5) / 2)
    # relu(1 + s): scale 1 [0.5, 0, 2] -> 2.5/3; scale 2 [1, 0] -> 0.5
    assert d_fake.item() == pytest.approx((2.5 / 3 + 0.5) / 2)
    # generator: -mean(D(fake)) averaged over scales: -((-1.5/3) + (-0.5)) / 2
    assert L.hinge_g_loss(fake).item() == pytest.approx(0.5)
    # scores beyond the margin cost the discriminator nothing
    zero_r, zero_f = L.hinge_d_loss(_outs([1.0, 3.0]), _outs([-1.0, -4.0]))
    assert zero_r.item() == 0 and zero_f.item() == 0


def test_feature_matching_by_hand():
    f1, f2 = torch.zeros(1, 2, 2, 2), torch.ones(1, 3, 1, 1)
    fake = [[f1, f2, torch.zeros(1, 1, 1, 1)], [f1 + 1, torch.zeros(1, 1, 1, 1)]]
    real = [[f1 + 0.5, f2 * 3, torch.full((1, 1, 1, 1), 9.0)], [f1 - 1, torch.full((1, 1, 1, 1), 9.0)]]
    # scale 1: |0 - 0.5| + |1 - 3| = 2.5; scale 2: |1 - (-1)| = 2; the scores do not count; mean over 2 scales
    assert L.feature_matching_loss(fake, real).item() == pytest.approx((2.5 + 2.0) / 2)
    real[0][0].requires_grad_(True)
    fake[0][0].requires_grad_(True)
    L.feature_matching_loss(fake, real).backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None  # real features are targets


def test_kl_divergence():
    mu, logvar = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(dim=1).mean()
    assert L.kl_divergence(mu, logvar).item() == pytest.approx(expected.item())
    assert L.kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)).item() == 0
    # by hand: mu = 1, logvar = 0 in 3 dims -> 0.5 * 3
    assert L.kl_divergence(torch.ones(1, 3), torch.zeros(1, 3)).item() == pytest.approx(1.5)


def test_vgg_loss(encoder):
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    assert L.vgg_loss(encoder, a, a).item() == 0
    b = a.clone().requires_grad_(True)
    loss = L.vgg_loss(encoder, b, torch.rand(2, 3, 32, 32) * 2 - 1)
    loss.backward()
    assert loss.item() > 0 and b.grad.abs().sum() > 0
    feats_a, feats_c = encoder((a + 1) / 2, L.VGG_LAYER_WEIGHTS.keys() - {"relu4_1", "relu5_1"}), None
    c = a * 0.5
    feats_c = encoder((c + 1) / 2, ("relu1_1", "relu2_1", "relu3_1"))
    by_hand = sum(w * (feats_a[k] - feats_c[k]).abs().mean() for k, w in
                  (("relu1_1", 1 / 32), ("relu2_1", 1 / 16), ("relu3_1", 1 / 8)))
    assert L.vgg_loss(encoder, a, c).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_sync_batch_norm_is_batch_norm_in_one_process():
    from stylekit.nn import BatchNorm

    a, b = SyncBatchNorm(3, affine=False), BatchNorm(3, affine=False)
    x = torch.randn(4, 3, 5, 5)
    _close(a(x), b(x), tol=1e-6)
    _close(a.running_var, b.running_var, tol=1e-6)
    a.eval(), b.eval()
    _close(a(x), b(x), tol=1e-6)
    # autocast: statistics in fp32, result in the input's dtype
    assert a.train()(x.bfloat16()).dtype == torch.bfloat16


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def _write_pair(root, stem, labels: np.ndarray, mode="L", image=None, image_ext=".png"):
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lab = Image.fromarray(labels.astype(np.uint8), "L")
    if mode == "P":
        lab = lab.convert("P")
        lab = Image.fromarray(labels.astype(np.uint8), "P")
        lab.putpalette(palette(256).flatten().tolist())
    elif mode != "L":
        lab = lab.convert(mode)
    lab.save(root / "labels" / f"{stem}.png")
    if image is None:  # a photo whose red channel encodes the class: lets tests check alignment
        image = np.stack([labels * 60, np.tile(np.arange(labels.shape[1]), (labels.shape[0], 1)) * 4,
                          np.zeros_like(labels)], -1).astype(np.uint8)
    Image.fromarray(image, "RGB").save(root / "images" / f"{stem}{image_ext}", quality=100)


def _stripes(h=20, w=24, classes=3, offset=0):
    return ((np.arange(w)[None, :] // 4 + np.arange(h)[:, None] // 5 + offset) % classes).repeat(1, 0)


def test_label_maps_load_in_modes_l_and_p(tmp_path):
    _write_pair(tmp_path, "a", _stripes(), mode="L")
    _write_pair(tmp_path, "b", _stripes(offset=1), mode="P", image_ext=".jpg")
    assert read_label_map(tmp_path / "labels" / "b.png", 3).max() == 2  # palette indices are the classes
    bank = LabelledBank.from_dirs(tmp_path / "labels", tmp_path / "images", 3, resize=20, warn=pytest.fail)
    assert bank.names == ["a", "b"] and len(bank) == 2
    assert bank.labels[0].shape == (20, 24) and bank.images[0].shape == (3, 20, 24)
    np.testing.assert_array_equal(bank.labels[0].numpy(), _stripes())


def test_crops_and_flips_keep_labels_and_images_aligned_and_are_seeded(tmp_path):
    _write_pair(tmp_path, "a", _stripes(40, 48))
    bank = LabelledBank.from_dirs(tmp_path / "labels", tmp_path / "images", 3, resize=40)
    labels, images = bank.random_crops(16, 16, torch.Generator().manual_seed(0))
    assert labels.shape == (16, 16, 16) and labels.dtype == torch.long and images.shape == (16, 3, 16, 16)
    assert torch.equal((images[:, 0] * 255).round().long(), labels * 60)  # red channel = 60 * class
    column = (images[:, 1] * 255).round()
    flipped = [bool(column[i, 0, 0] > column[i, 0, -1]) for i in range(16)]
    assert any(flipped) and not all(flipped)  # some crops were mirrored (x ramp decreasing), some not
    again = bank.random_crops(16, 16, torch.Generator().manual_seed(0))
    assert torch.equal(labels, again[0]) and torch.equal(images, again[1])
    no_flip = bank.random_crops(16, 16, torch.Generator().manual_seed(0), flip=False)[1][:, 1]
    assert all(no_flip[i, 0, 0] <= no_flip[i, 0, -1] for i in range(16))


def test_resize_uses_nearest_for_labels(tmp_path):
    _write_pair(tmp_path, "a", _stripes(20, 24))
    bank = LabelledBank.from_dirs(tmp_path / "labels", tmp_path / "images", 3, resize=30)
    assert bank.labels[0].shape == (30, 36)
    assert set(bank.labels[0].unique().tolist()) == {0, 1, 2}  # no blended values


def test_label_value_out_of_range_is_a_clear_error(tmp_path):
    bad = _stripes()
    bad[3, 4] = 7
    _write_pair(tmp_path, "a", bad)
    with pytest.raises(StylekitError, match=r"a\.png: label value 7 is out of range for --num-classes 3 "
                                            r"\(values must be 0\.\.2; 1 pixels are >= 3\)"):
        LabelledBank.from_dirs(tmp_path / "labels", tmp_path / "images", 3, resize=20)
    assert read_label_map(tmp_path / "labels" / "a.png", 8).max() == 7


def test_label_map_format_errors(tmp_path):
    _write_pair(tmp_path / "rgb", "a", _stripes(), mode="RGB")
    with pytest.raises(StylekitError, match="mode RGB.*class index"):
        LabelledBank.from_dirs(tmp_path / "rgb" / "labels", tmp_path / "rgb" / "images", 3, resize=20)
    (tmp_path / "jpg" / "labels").mkdir(parents=True)
    Image.fromarray(_stripes().astype(np.uint8), "L").save(tmp_path / "jpg" / "labels" / "a.jpg")
    (tmp_path / "jpg" / "images").mkdir()
    with pytest.raises(StylekitError, match="must be PNG"):
        LabelledBank.from_dirs(tmp_path / "jpg" / "labels", tmp_path / "jpg" / "images", 3, resize=20)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(StylekitError, match="not an image"):
        read_label_map(tmp_path / "broken.png", 3)


def test_pairing_errors_and_warnings(tmp_path):
    with pytest.raises(StylekitError, match="labels directory not found"):
        LabelledBank.from_dirs(tmp_path / "nope", tmp_path, 3, resize=20)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StylekitError, match="no label maps"):
        LabelledBank.from_dirs(tmp_path / "empty", tmp_path / "empty", 3, resize=20)
    _write_pair(tmp_path / "d", "a", _stripes())
    _write_pair(tmp_path / "d", "b", _stripes())
    (tmp_path / "d" / "images" / "b.png").rename(tmp_path / "d" / "images" / "c.png")
    warnings = []
    bank = LabelledBank.from_dirs(tmp_path / "d" / "labels", tmp_path / "d" / "images", 3, resize=20, warn=warnings.append)
    assert bank.names == ["a"]
    assert len(warnings) == 2 and "b.png" in warnings[0] and "c.png" in warnings[1]
    # no pair at all
    (tmp_path / "d" / "images" / "a.png").rename(tmp_path / "d" / "images" / "z.png")
    with pytest.raises(StylekitError, match="same file stem"):
        LabelledBank.from_dirs(tmp_path / "d" / "labels", tmp_path / "d" / "images", 3, resize=20, warn=warnings.append)
    # two images with one stem
    _write_pair(tmp_path / "e", "a", _stripes())
    _write_pair(tmp_path / "e", "a", _stripes(), image_ext=".jpg")
    with pytest.raises(StylekitError, match="share the stem 'a'"):
        LabelledBank.from_dirs(tmp_path / "e" / "labels", tmp_path / "e" / "images", 3, resize=20)
    # a pair of different sizes
    _write_pair(tmp_path / "f", "a", _stripes(), image=np.zeros((18, 18, 3), np.uint8))
    with pytest.raises(StylekitError, match="same size"):
        LabelledBank.from_dirs(tmp_path / "f" / "labels", tmp_path / "f" / "images", 3, resize=20)


def test_colourise_uses_the_palette():
    lab = torch.tensor([[0, 1], [2, 0]])
    img = colourise(lab, 3)
    assert img.shape == (3, 2, 2)
    assert torch.equal((img[:, 1, 0] * 255).round(), torch.tensor(palette(3)[2], dtype=torch.float32))


# ---------------------------------------------------------------------------
# the procedural dataset and the colour error
# ---------------------------------------------------------------------------


def test_synthetic_dataset_is_reproducible_and_loadable(tmp_path):
    a_lab, a_img = make_example(3, 7, 32)
    b_lab, b_img = make_example(3, 7, 32)
    assert np.array_equal(a_lab, b_lab) and np.array_equal(a_img, b_img)
    assert not np.array_equal(make_example(4, 7, 32)[0], a_lab)
    out = make_dataset(tmp_path / "ds", count=12, size=32, seed=0)
    info = json.loads((out / "classes.json").read_text())
    assert info["classes"] == list(CLASSES) and info["num_classes"] == 4
    bank = LabelledBank.from_dirs(out / "labels", out / "images", 4, resize=32, warn=pytest.fail)
    assert len(bank) == 12 and Image.open(out / "labels" / "00000.png").mode == "P"
    labels, real = bank.center_crops(32)
    assert set(labels.unique().tolist()) == {0, 1, 2, 3}
    # each class has its own colour: the classes' mean colours are far apart
    means = torch.stack([torch.stack([real[:, c][labels == k].mean() for c in range(3)]) for k in range(4)])
    gaps = torch.cdist(means, means) * 255
    assert gaps[~torch.eye(4, dtype=torch.bool)].min() > 40
    with pytest.raises(StylekitError, match="--count"):
        make_dataset(tmp_path / "x", count=0)


def test_class_colour_error_by_hand():
    labels = torch.tensor([[[0, 0], [1, 1]]])
    real = torch.zeros(1, 3, 2, 2)
    real[:, :, 0] = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1)  # class 0
    real[:, :, 1] = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1)  # class 1
    fake = real.clone()
    fake[:, 0, 0, 0] = 0.4  # class 0's mean red: 0.3 instead of 0.2 -> error 0.1 * 255 / 3
    result = class_colour_error(fake, real, labels, num_classes=3)
    assert set(result["per_class"]) == {0, 1}  # class 2 is absent
    assert result["per_class"][0]["error"] == pytest.approx(0.1 * 255 / 3)
    assert result["per_class"][1]["error"] == 0
    assert result["mean"] == pytest.approx(0.1 * 255 / 6)
    # the label-blind baseline paints the mean colour everywhere
    base = class_colour_error(global_mean_baseline(real), real, labels, 3)
    assert base["per_class"][0]["error"] == pytest.approx((0.4 + 0.2 + 0.3) / 3 * 255)


def test_trainable_steps_and_freezes():
    from stylekit.distributed import Context
    from stylekit.training.trainable import Trainable

    torch.manual_seed(8)
    lin = torch.nn.Linear(3, 1)
    t = Trainable(lin, torch.optim.SGD(lin.parameters(), lr=0.5), Context())
    assert t.net is lin  # one process: no DDP wrapper
    before = lin.weight.detach().clone()
    x = torch.randn(4, 3)
    t.step(lin(x).sum())
    assert torch.allclose(lin.weight, before - 0.5 * x.sum(0, keepdim=True))
    with t.frozen() as module:
        assert module is lin and not any(p.requires_grad for p in lin.parameters())
        assert not module(x).requires_grad
    assert all(p.requires_grad for p in lin.parameters())
    t.set_lr(0.1)
    state = t.state_dict()
    other = Trainable(torch.nn.Linear(3, 1), torch.optim.SGD(torch.nn.Linear(3, 1).parameters(), lr=1.0), Context())
    other.load_state_dict(state)
    assert torch.equal(other.module.weight, lin.weight) and other.optimizer.param_groups[0]["lr"] == 0.1

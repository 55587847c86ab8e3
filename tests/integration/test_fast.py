"""The compact fast network: its formulas, its stylizer's controls, its trainer, its ONNX export."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from stylekit.cli import main
from stylekit.errors import StylekitError
from stylekit.fast.model import FastNet, FastNetConfig, conv_flops, modulate, style_vector

from ..conftest import make_image

SMALL = FastNetConfig(widths=(4, 8, 8, 16), blocks=2, hidden=16, style_size=64)


def save_net(net: FastNet, path):
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"kind": "fast", "model": json.dumps(net.cfg.to_dict())})
    return path


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    net = FastNet(SMALL)
    with torch.no_grad():  # a head that modulates (the trained head starts at zero)
        for p in net.head.parameters():
            p.normal_(0, 0.05)
    return net.eval()


def test_modulate_is_instance_norm_then_scale_and_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64) * 4 - 1
    scale, shift = torch.rand(2, 3, 1, 1, generator=g, dtype=torch.float64), torch.rand(2, 3, 1, 1, generator=g,
                                                                                      dtype=torch.float64)
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * scale + shift
    assert torch.allclose(modulate(x, scale, shift).double(), expected, atol=1e-5)


def test_style_vector_is_log_statistics():
    g = torch.Generator().manual_seed(1)
    feats = {"relu1_1": torch.rand(1, 64, 4, 4, generator=g), "relu2_1": torch.rand(1, 128, 2, 2, generator=g),
             "relu3_1": torch.rand(1, 256, 2, 2, generator=g)}
    v = style_vector(feats)
    assert v.shape == (1, 2 * (64 + 128 + 256))
    f = feats["relu2_1"][0].double().reshape(128, -1)
    mean, var = f.mean(1), f.var(1, correction=0)
    assert torch.allclose(v[0, 128:256].double(), torch.log1p(mean), atol=1e-6)  # relu1_1 takes 2 x 64 first
    assert torch.allclose(v[0, 256:384].double(), 0.5 * torch.log(var + 1e-5), atol=1e-5)


def test_untrained_head_is_plain_instance_norm():
    net = FastNet(SMALL)
    params = net.modulation(torch.rand(1, SMALL.style_dim), 0.3)
    assert len(params) == SMALL.blocks + 3
    assert all(torch.equal(s, torch.ones_like(s)) and torch.equal(b, torch.zeros_like(b)) for s, b in params)


def test_conv_flops_by_hand():
    cfg = FastNetConfig(widths=(2, 2, 2, 2), blocks=0, hidden=1, style_size=64)
    net = FastNet(cfg)
    h = w = 16
    convs = (2 * 2 * 3 * 9 * 16 * 16 + 2 * 2 * 2 * 9 * 8 * 8 + 2 * 2 * 2 * 9 * 4 * 4 + 2 * 2 * 2 * 9 * 2 * 2
             # to3 at 2x2 (before its upsampling), dec3 (dw + pw) at 4x4, to2 at 4x4, dec2 at 8x8, to1 at 8x8, out
             + 2 * 4 * 2 * 2 + 2 * (2 * 9 + 4) * 4 * 4 + 2 * 4 * 4 * 4 + 2 * (2 * 9 + 4) * 8 * 8 + 2 * 4 * 8 * 8
             + 2 * 3 * 2 * 9 * 16 * 16)
    head = 2 * ((cfg.style_dim + 1) * 1 + 1 * 1 + 1 * 2 * (2 + 2 + 2))  # modulated: 1/4, 1/2, full
    assert conv_flops(net, h, w) == convs + head


def test_fast_stylizer_controls(small_net, tmp_path, encoder):
    from stylekit.fast.stylizer import FastStylizer

    model = FastStylizer.load(weights=save_net(small_net, tmp_path / "fast.safetensors"), device="cpu",
                              precision="fp32")
    g = torch.Generator().manual_seed(2)
    content, s1, s2 = torch.rand(3, 44, 60, generator=g), torch.rand(3, 40, 40, generator=g), torch.rand(3, 48, 32, generator=g)
    single = model.stylize(content, s1, size=0, style_size=0)
    assert single.shape == content.shape and float(single.min()) >= 0 and float(single.max()) <= 1
    blended = model.stylize(content, [s1, s2], style_weights=[2.0, 0.0], size=0, style_size=0)
    assert torch.allclose(single, blended, atol=1e-6)
    other = model.stylize(content, s2, size=0, style_size=0)
    assert not torch.allclose(single, other, atol=1e-3)
    # masks: each region looks like its own style's output
    mask = torch.zeros(1, 44, 60)
    mask[:, :, :30] = 1
    regions = model.stylize(content, [s1, s2], masks=[mask, 1 - mask], size=0, style_size=0)
    assert regions.shape == content.shape

    def gap(a, b, cols):
        return float((a[..., cols] - b[..., cols]).abs().mean())

    left, right = slice(0, 20), slice(40, 60)
    assert gap(regions, single, left) < gap(regions, other, left)
    assert gap(regions, other, right) < gap(regions, single, right)
    # alpha enters the network: a different alpha, a different output
    assert not torch.allclose(model.stylize(content, s1, alpha=0.2, size=0, style_size=0), single, atol=1e-4)


def test_fast_stylizer_moves_the_mean_colour_to_the_style(small_net, tmp_path, encoder):
    from stylekit.fast.stylizer import FastStylizer

    weights = save_net(small_net, tmp_path / "fast.safetensors")
    shifted = FastStylizer.load(weights=weights, device="cpu", precision="fp32")
    plain = FastStylizer.load(weights=weights, device="cpu", precision="fp32", mean_colour=False)
    g = torch.Generator().manual_seed(4)
    content = torch.rand(1, 3, 44, 60, generator=g, dtype=torch.float64).float()
    s1 = torch.rand(1, 3, 40, 40, generator=g) * 0.3  # dark
    s2 = 0.7 + torch.rand(1, 3, 48, 32, generator=g) * 0.3  # light

    def means(x, cols=slice(None)):
        return x[0, :, :, cols].double().clamp(0, 1).mean(dim=(1, 2))

    raw = plain.transfer(content, [s1], alpha=0.6)
    out = shifted.transfer(content, [s1], alpha=0.6)
    offset = out - raw
    assert float((offset - offset[..., :1, :1]).abs().max()) < 1e-6  # one offset per channel
    expected = 0.6 * (s1[0].double().mean(dim=(1, 2)) - means(raw))
    assert torch.allclose(offset[0, :, 0, 0].double(), expected, atol=1e-5)
    # a blend aims at the weighted mean of the styles' means
    raw = plain.transfer(content, [s1, s2], weights=[0.25, 0.75])
    out = shifted.transfer(content, [s1, s2], weights=[0.25, 0.75])
    target = 0.25 * s1[0].double().mean(dim=(1, 2)) + 0.75 * s2[0].double().mean(dim=(1, 2))
    assert torch.allclose((out - raw)[0, :, 5, 5].double(), target - means(raw), atol=1e-5)
    # masks: each region moves to its own style's mean
    mask = torch.zeros(1, 1, 44, 60)
    mask[..., :30] = 1
    raw = plain.transfer(content, [s1, s2], masks=[mask, 1 - mask])
    out = shifted.transfer(content, [s1, s2], masks=[mask, 1 - mask])
    left, right = slice(0, 30), slice(30, 60)
    assert torch.allclose((out - raw)[0, :, 3, 3].double(), s1[0].double().mean(dim=(1, 2)) - means(raw, left), atol=1e-5)
    assert torch.allclose((out - raw)[0, :, 3, 40].double(), s2[0].double().mean(dim=(1, 2)) - means(raw, right),
                          atol=1e-5)
    # alpha 0 asks for none of the style: no shift
    assert torch.equal(shifted.transfer(content, [s1], alpha=0.0), plain.transfer(content, [s1], alpha=0.0))


def test_load_refuses_other_files(tmp_path, decoder_file):
    from stylekit.fast.stylizer import load_fast_net

    with pytest.raises(StylekitError, match="not a fast-network"):
        load_fast_net(decoder_file)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(StylekitError, match="cannot read"):
        load_fast_net(tmp_path / "junk.safetensors")


def test_cli_stylize_with_the_fast_method(small_net, tmp_path):
    weights = save_net(small_net, tmp_path / "fast.safetensors")
    content, style = make_image(tmp_path / "c.png", (70, 50), 1), make_image(tmp_path / "s.jpg", (64, 64), 2)
    out = tmp_path / "out.png"
    assert main(["stylize", str(content), "--style", str(style), "--method", "fast", "--weights", str(weights),
                 "-o", str(out), "--size", "64"]) == 0
    from PIL import Image

    assert Image.open(out).size == (64, 46)


def test_onnx_export_matches_pytorch(small_net, tmp_path, encoder):
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnxruntime as ort

    from stylekit.fast.model import STYLE_LAYERS

    weights = save_net(small_net, tmp_path / "fast.safetensors")
    assert main(["export", "onnx", "--method", "fast", "--weights", str(weights), "--out", str(tmp_path / "x")]) == 0
    manifest = json.loads((tmp_path / "x" / "stylekit_fast_onnx.json").read_text())
    g = torch.Generator().manual_seed(3)
    content, style = torch.rand(1, 3, 40, 56, generator=g), torch.rand(1, 3, 48, 64, generator=g)
    from stylekit.fast.stylizer import FastStylizer

    stylizer = FastStylizer(small_net, encoder, device="cpu", precision="fp32", channels_last=False)
    with torch.no_grad():
        vec = style_vector(encoder(style, STYLE_LAYERS))
        ref = stylizer.transfer(content, [style], alpha=0.6)  # the style is at style_size: taken as it is
    style_sess = ort.InferenceSession(str(tmp_path / "x" / manifest["style"]))
    net_sess = ort.InferenceSession(str(tmp_path / "x" / manifest["network"]))
    v, m = style_sess.run(None, {"style": style.numpy()})
    out = net_sess.run(None, {"content": content.numpy(), "style_vector": v, "style_mean": m,
                              "alpha": np.array([0.6], np.float32)})[0]
    assert np.abs(v - vec.numpy()).max() < 1e-4
    assert np.abs(m - style.mean(dim=(2, 3)).numpy()).max() < 1e-6
    assert np.abs(out - ref.numpy()).max() < 1e-4


@pytest.fixture
def tiny_data(tmp_path):
    for i in range(3):
        make_image(tmp_path / "content" / f"c{i}.jpg", (72, 64), seed=i)
        make_image(tmp_path / "style" / f"s{i}.png", (64, 72), seed=10 + i)
    return tmp_path / "content", tmp_path / "style"


TINY_FAST = ["--content-resize", "48", "--style-resize", "48", "--crop", "32", "--batch-size", "2", "--widths", "4,8,8,16",
             "--blocks", "1", "--hidden", "8", "--feature-scale", "1", "--device", "cpu", "--precision", "fp32",
             "--sample-every", "0", "--no-progress", "--log-every", "1"]


def test_train_fast_resumes_bit_for_bit(tiny_data, tmp_path):
    from safetensors.torch import load_file

    content, style = tiny_data
    base = ["train", "fast", "--content", str(content), "--style", str(style), *TINY_FAST]
    assert main([*base, "--out", str(tmp_path / "a"), "--max-steps", "3"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--max-steps", "2"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--max-steps", "3", "--resume"]) == 0
    a, b = load_file(str(tmp_path / "a" / "weights.safetensors")), load_file(str(tmp_path / "b" / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[:6] == ["step", "elapsed_s", "lr", "loss", "distill", "feature"]
    assert (tmp_path / "a" / "log.csv").read_text().splitlines()[1:] != []
    assert [r.split(",")[3:6] for r in rows[1:]] == [r.split(",")[3:6] for r in (tmp_path / "b" / "log.csv").read_text().splitlines()[1:]]


@pytest.mark.parametrize("style_size", [128, 32])
def test_fast_loss_terms(tiny_data, style_size):
    """The distillation loss is the L1 distance to the teacher's output; the feature term the relu3_1 MSE;
    the student sees the style's statistics at ``style_size`` px (at most the crop)."""
    import torch.nn.functional as F

    from stylekit.fast.train import FastTrainConfig, FastTrainTask
    from stylekit.measures import downsample

    content, style = tiny_data
    cfg = FastTrainConfig(content=str(content), style=str(style), batch_size=2, widths="4,8,8,16", blocks=1, hidden=8, feature_scale=2, device="cpu",
                          precision="fp32", distill_weight=2.0, feature_weight=0.5, crop=64, content_resize=64,
                          style_resize=64, style_size=style_size)
    task = FastTrainTask(cfg, warn=lambda m: None)
    assert task.student.module.cfg.style_size == min(style_size, 64)
    g = torch.Generator().manual_seed(4)
    c, s, a = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g), torch.tensor([1.0, 0.4])
    taught, vectors = task.teach(c, s, a), style_vector(task.style_features(s))
    total, parts = task.losses(c, s, a, taught, vectors)
    with torch.no_grad():
        # a 64 px picture is one level of the pyramid: adain in one pass, then the palette step
        target = torch.stack([task.teacher.stylize(ci, si, alpha=float(ai), size=0, style_size=0, stroke_scale=0.25)
                              for ci, si, ai in zip(c, s, a)])
        side = min(style_size, 64)
        small = s.reshape(2, 3, side, 64 // side, side, 64 // side).mean(dim=(3, 5))  # area averaging by hand
        hand_vectors = style_vector(task.encoder(small, ("relu1_1", "relu2_1", "relu3_1")))
        out = task.student.module(c, hand_vectors, a)
    assert (taught - target).abs().max() < 1e-5
    assert (vectors - hand_vectors).abs().max() < 1e-4
    with torch.no_grad():
        l1 = F.l1_loss(out, target)
        feat = F.mse_loss(task.encoder.encode(downsample(out, 2)), task.encoder.encode(downsample(target, 2)))
    assert parts["distill"].item() == pytest.approx(l1.item(), rel=1e-4)
    assert parts["feature"].item() == pytest.approx(feat.item(), rel=1e-3)
    assert total.item() == pytest.approx(2.0 * l1.item() + 0.5 * feat.item(), rel=1e-3)


def _teacher_set(tiny_data, out, **overrides):
    from stylekit.fast.teacher_set import TeacherSetConfig, write_teacher_set

    content, style = tiny_data
    settings = dict(content=str(content), style=str(style), shards=3, shard_size=2, content_resize=64, style_resize=64,
                    crop=64, style_size=32, alpha_share=0.5)
    settings.update(overrides)
    cfg = TeacherSetConfig(**settings)
    return cfg, lambda part=(0, 1): write_teacher_set(cfg, out, part, warn=lambda m: None, report=lambda m: None)


def test_teacher_set_stores_the_teachers_outputs(tiny_data, tmp_path, encoder):
    """Each stored pair is the teacher's output for the stored crops (to 8-bit rounding), its
    style vector that of the stored style, and shards written in parts equal shards written at once."""
    from safetensors.torch import load_file

    from stylekit.adain.model import AdaINStylizer
    from stylekit.fast.teacher_set import shard_path

    _, write_all = _teacher_set(tiny_data, tmp_path / "one")
    assert len(write_all()) == 3
    assert write_all() == []  # nothing left to write
    _, write_part = _teacher_set(tiny_data, tmp_path / "two")
    assert [p.name for p in write_part((1, 2))] == ["shard_00001.safetensors"]
    assert len(write_part((0, 2))) == 2
    teacher = AdaINStylizer.load(device="cpu", cache_size=0)  # adain as it runs by default, transform included
    assert teacher.transform is not None
    for k in range(3):
        one, two = load_file(str(shard_path(tmp_path / "one", k))), load_file(str(shard_path(tmp_path / "two", k)))
        assert all(torch.equal(one[key], two[key]) for key in one)
        content, style = one["content"].float() / 255, one["style"].float() / 255
        assert one["teacher"].dtype == torch.uint8 and one["alpha"].shape == (2,)
        with torch.no_grad():
            for i in range(2):
                ref = teacher.stylize(content[i], style[i], alpha=float(one["alpha"][i]), size=0, style_size=0,
                                      stroke_scale=0.25)
                assert (one["teacher"][i].float() / 255 - ref).abs().max() <= 0.5 / 255 + 1e-4
            small = style.reshape(2, 3, 32, 2, 32, 2).mean(dim=(3, 5))  # area averaging to 32 px by hand
            hand = style_vector(encoder(small, ("relu1_1", "relu2_1", "relu3_1")))
        assert (one["style_vector"] - hand).abs().max() < 1e-4
    _, other = _teacher_set(tiny_data, tmp_path / "one", seed=1)
    with pytest.raises(StylekitError, match="other settings"):
        other()
    # --teacher-transform none: the teacher is plain AdaIN
    _, write_plain = _teacher_set(tiny_data, tmp_path / "plain", shards=1, teacher_transform="none")
    write_plain()
    plain, shard = AdaINStylizer.load(device="cpu", cache_size=0, transform_weights=False), load_file(str(shard_path(tmp_path / "plain", 0)))
    with torch.no_grad():
        ref = plain.stylize(shard["content"][0].float() / 255, shard["style"][0].float() / 255, alpha=float(shard["alpha"][0]),
                            size=0, style_size=0, stroke_scale=0.25)
    assert (shard["teacher"][0].float() / 255 - ref).abs().max() <= 0.5 / 255 + 1e-4
    first = load_file(str(shard_path(tmp_path / "one", 0)))  # the same crops, taught through the transform
    assert torch.equal(first["content"], shard["content"])
    assert (first["teacher"][0].float() - shard["teacher"][0].float()).abs().max() > 2


def test_teacher_set_views_are_matching_windows(tiny_data, tmp_path):
    from stylekit.fast.teacher_set import TeacherSet

    _, write = _teacher_set(tiny_data, tmp_path / "set")
    write()
    data = TeacherSet(tmp_path / "set")
    assert len(data) == 6 and data.crop == 64
    content, style, teacher, alpha, vectors, indices = data.sample(40, 24, torch.Generator().manual_seed(0))
    flipped = 0
    for c, s, t, a, v, i in zip(content, style, teacher, alpha, vectors, indices.tolist()):
        assert torch.equal(data.style[i].float() / 255, s)
        assert a == data.alpha[i] and torch.equal(v, data.style_vector[i])
        # the content window is somewhere in the stored crop, as is, or mirrored; the teacher's is the same window
        found = []
        for f in (False, True):
            src_c, src_t = (data.content[i].flip(-1), data.teacher[i].flip(-1)) if f else (data.content[i], data.teacher[i])
            for top in range(64 - 24 + 1):
                for left in range(64 - 24 + 1):
                    if torch.equal(src_c[:, top : top + 24, left : left + 24].float() / 255, c):
                        found.append(torch.equal(src_t[:, top : top + 24, left : left + 24].float() / 255, t))
                        flipped += f
        assert found and all(found)
    assert 0 < flipped < 40
    with pytest.raises(StylekitError, match="cannot exceed"):
        data.sample(1, 72, torch.Generator())


def test_train_fast_on_a_teacher_set_resumes_bit_for_bit(tiny_data, tmp_path):
    from safetensors.torch import load_file

    _, write = _teacher_set(tiny_data, tmp_path / "set")
    write()
    base = ["train", "fast", "--teacher-set", str(tmp_path / "set"), "--student-crop", "32", "--style-size", "32",
            *TINY_FAST, "--sample-every", "2", "--style-weight", "0.1", "--colour-weight", "1"]
    assert main([*base, "--out", str(tmp_path / "a"), "--max-steps", "3"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--max-steps", "2"]) == 0
    assert main(["train", "fast", "--out", str(tmp_path / "b"), "--max-steps", "3", "--resume"]) == 0
    a, b = load_file(str(tmp_path / "a" / "weights.safetensors")), load_file(str(tmp_path / "b" / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "samples" / "step_0000002.png").is_file()
    # a student that encodes styles at another size than the set did
    assert main([*base, "--crop", "48", "--style-size", "48", "--out", str(tmp_path / "c"), "--max-steps", "1"]) == 2


def test_train_fast_starts_from_init_weights(tiny_data, tmp_path):
    from stylekit.fast.stylizer import load_fast_net
    from stylekit.fast.train import FastTrainConfig, FastTrainTask

    _, write = _teacher_set(tiny_data, tmp_path / "set")
    write()
    torch.manual_seed(3)
    start = save_net(FastNet(FastNetConfig(widths=(4, 8, 8, 16), blocks=1, hidden=8, style_size=32)), tmp_path / "start.safetensors")
    cfg = FastTrainConfig(teacher_set=str(tmp_path / "set"), widths="4,8,8,16", blocks=1, hidden=8, style_size=32, crop=64,
                          content_resize=64, style_resize=64, device="cpu", init_weights=str(start))
    task = FastTrainTask(cfg)
    task.start_fresh()
    expected = load_fast_net(start).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in task.student.module.state_dict().items())
    other = save_net(FastNet(FastNetConfig(widths=(4, 8, 8, 16), blocks=2, hidden=8, style_size=32)), tmp_path / "other.safetensors")
    with pytest.raises(StylekitError, match="another architecture"):
        FastTrainTask(FastTrainConfig(**{**cfg.__dict__, "init_weights": str(other)})).start_fresh()
    with pytest.raises(StylekitError, match="--content and --style are required"):
        FastTrainConfig(content=None, style=None)


def test_style_scales_default_and_checks(tiny_data):
    from stylekit.fast.train import FastTrainConfig

    content, style = tiny_data
    assert FastTrainConfig(content=str(content), style=str(style)).scales() == (1, 2)
    assert FastTrainConfig(teacher_set="set", feature_scale=2).scales() == (2,)
    assert FastTrainConfig(teacher_set="set", style_scales="1,2,4", style_weight=0.1).scales() == (1, 2, 4)
    for bad, message in (("1,x", "comma-separated integers"), ("2,2", "repeats"), ("0", "at least 1"),
                         ("16", "leave 32 px")):
        with pytest.raises(StylekitError, match=message):
            FastTrainConfig(teacher_set="set", student_crop=128, style_scales=bad, style_weight=0.1)


@pytest.mark.parametrize("style_scales", ["", "1,2"])
def test_fast_loss_terms_on_a_teacher_set(tiny_data, tmp_path, style_scales):
    """With a teacher set: L1 to the stored output, the relu3_1 MSE on the output averaged over
    2 x 2 blocks, and the mean/std style loss (pairs at alpha 1 only) summed over the style
    scales (by default the feature term's 2 x 2 blocks alone), the style's statistics from the
    stored style averaged the same way."""
    import torch.nn.functional as F

    from stylekit.fast.train import FastTrainConfig, FastTrainTask

    _, write = _teacher_set(tiny_data, tmp_path / "set")
    write()
    cfg = FastTrainConfig(teacher_set=str(tmp_path / "set"), student_crop=64, batch_size=6, widths="4,8,8,16", blocks=1,
                          hidden=8, style_size=32, crop=64, content_resize=64, style_resize=64, device="cpu",
                          distill_weight=2.0, feature_weight=0.5, style_weight=0.25, feature_scale=2,
                          style_scales=style_scales, colour_weight=3.0, colour_directions=4)
    task = FastTrainTask(cfg)
    content, stats, alpha, target, vectors = task.batch()
    assert 0 < int((alpha == 1).sum()) < 6
    directions = torch.randn(4, 3, generator=torch.Generator().set_state(task.generator.get_state()))
    total, parts = task.losses(content, stats, alpha, target, vectors)
    layers = ("relu1_1", "relu2_1", "relu3_1")

    def halve(x):  # 2 x 2 block means, by hand
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))

    def moments(f):  # per channel over positions, float64
        f = f.double().flatten(2)
        return f.mean(-1), (f.var(-1, unbiased=False) + 1e-5).sqrt()

    with torch.no_grad():
        # the batch's styles and teacher outputs: the stored pairs these contents are windows of
        rows = [next(j for j in range(6) if any(torch.equal(src[j].float() / 255, c) for src in
                                                (task.set.content, task.set.content.flip(-1)))) for c in content]
        out = task.student.module(content, vectors, alpha)
        l1 = (out.double() - target.double()).abs().mean()
        feat = ((task.encoder(halve(out), ("relu3_1",))["relu3_1"].double()
                 - task.encoder(halve(target), ("relu3_1",))["relu3_1"].double()) ** 2).mean()
        styled = [i for i in range(6) if alpha[i] == 1]
        style = torch.stack([task.set.style[rows[i]].float() / 255 for i in styled])
        views = [halve] if not style_scales else [lambda x: x, halve]
        style_loss = 0.0
        for view in views:
            fo, fs = task.encoder(view(out[styled]), layers), task.encoder(view(style), layers)
            style_loss += sum(((moments(fo[k])[m] - moments(fs[k])[m]) ** 2).mean() for k in layers for m in (0, 1))
        # the palette term: per styled pair and direction, the sorted projections of the window's
        # 64 x 64 pixels against the whole stored style's at the same quantiles
        colour, units = [], directions.double() / directions.double().norm(dim=1, keepdim=True)
        for i, s_img in zip(styled, style):
            for d in units:
                po = sorted((d[:, None] * out[i].double().reshape(3, -1)).sum(0).tolist())
                ps = sorted((d[:, None] * s_img.double().reshape(3, -1)).sum(0).tolist())
                colour += [(po[j] - ps[int((j + 0.5) * len(ps) / len(po))]) ** 2 for j in range(len(po))]
        colour = sum(colour) / len(colour)
    assert parts["distill"].item() == pytest.approx(l1.item(), rel=1e-5)
    assert parts["feature"].item() == pytest.approx(feat.item(), rel=1e-3)
    assert parts["style"].item() == pytest.approx(style_loss.item(), rel=1e-3)
    assert parts["colour"].item() == pytest.approx(colour, rel=1e-4)
    assert total.item() == pytest.approx(2 * l1.item() + 0.5 * feat.item() + 0.25 * style_loss.item() + 3 * colour, rel=1e-3)

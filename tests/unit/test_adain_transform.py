"""The learned covariance transform: its formula in float64, its masks, gradients, files, stylizer and default."""

from __future__ import annotations

import json

import pytest
import torch

from stylekit import pyramid
from stylekit.adain.model import AdaINStylizer
from stylekit.adain.transform import CovarianceTransform, load_transform
from stylekit.errors import StylekitError
from stylekit.files import save_tensors

from .. import reference


def random_transform(channels=6, rank=3, seed=0) -> CovarianceTransform:
    """A transform with every weight random (a fresh one is exactly AdaIN: its expansion is zero)."""
    t = CovarianceTransform(channels, rank).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in t.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    return t


def weights_of(t: CovarianceTransform):
    return (t.compress.weight[:, :, 0, 0], t.style_matrix.weight, t.style_matrix.bias,
            t.content_matrix.weight, t.content_matrix.bias, t.expand.weight[:, :, 0, 0])


def test_transform_matches_its_formula_in_float64():
    t = random_transform()
    content, style = reference.rand(2, 6, 5, 7, seed=3) * 2 + 1, reference.rand(1, 6, 4, 6, seed=4) * 3
    expected = reference.covariance_transform(content, style, *weights_of(t))
    reference.close(t(content, t.style_code(style)), expected)


def test_masked_transform_takes_the_regions_statistics():
    t = random_transform(seed=5)
    content, style = reference.rand(1, 6, 6, 8, seed=6), reference.rand(1, 6, 5, 5, seed=7)
    mask = torch.zeros(1, 1, 6, 8, dtype=torch.float64)
    mask[..., 1:5, 2:7] = 1
    expected = reference.covariance_transform(content, style, *weights_of(t), mask=mask)
    reference.close(t(content, t.style_code(style), mask), expected)
    # a hard rectangular mask: inside it, the same as the transform of the cropped features
    inside = t(content[..., 1:5, 2:7], t.style_code(style))
    reference.close(t(content, t.style_code(style), mask)[..., 1:5, 2:7], inside.detach().numpy())


def test_untrained_transform_is_adain():
    t = CovarianceTransform(6, 3).double()
    content, style = reference.rand(2, 6, 5, 7, seed=8), reference.rand(1, 6, 4, 6, seed=9)
    reference.close(t(content, t.style_code(style)), reference.adain(content, style))


def test_gradients_reach_every_weight_and_the_features():
    t = random_transform(channels=4, rank=2, seed=10)
    content = reference.rand(1, 4, 3, 4, seed=11).requires_grad_()
    style = reference.rand(1, 4, 3, 3, seed=12).requires_grad_()
    assert torch.autograd.gradcheck(lambda c, s: t(c, t.style_code(s)), (content, style))
    t(content, t.style_code(style)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in t.parameters())


def test_inputs_are_checked():
    t = CovarianceTransform(6, 3)
    with pytest.raises(StylekitError, match="rank"):
        CovarianceTransform(6, 7)
    with pytest.raises(StylekitError, match=r"\(N, 6, H, W\)"):
        t.style_code(torch.rand(1, 5, 4, 4))
    with pytest.raises(StylekitError, match=r"\(N, 6, H, W\)"):
        t(torch.rand(6, 4, 4), t.style_code(torch.rand(1, 6, 4, 4)))


def test_weights_round_trip_and_other_files_are_refused(tmp_path):
    t = random_transform().float()
    save_tensors(tmp_path / "t.safetensors", t.state_dict(), {"kind": "adain-transform"})
    loaded = load_transform(tmp_path / "t.safetensors")
    assert (loaded.channels, loaded.rank) == (6, 3)
    x, s = torch.rand(1, 6, 4, 5), torch.rand(1, 6, 3, 3)
    torch.testing.assert_close(loaded(x, loaded.style_code(s)), t(x, t.style_code(s)))
    save_tensors(tmp_path / "d.safetensors", {"convs.conv1_1.weight": torch.zeros(1)}, {"kind": "adain"})
    with pytest.raises(StylekitError, match="not a covariance transform"):
        load_transform(tmp_path / "d.safetensors")


def test_stylizer_with_a_transform_keeps_every_control(encoder, random_decoder):
    """Interpolation, alpha and masks act on the transform's targets as on AdaIN's:
    with an untrained transform the outputs are AdaIN's, and a trained one changes them."""
    plain = AdaINStylizer(encoder, random_decoder, device="cpu", precision="fp32")
    fresh = AdaINStylizer(encoder, random_decoder, device="cpu", precision="fp32", transform=CovarianceTransform(256, 8))
    content = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    styles = [torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    mask = torch.zeros(1, 1, 40, 48)
    mask[..., :24] = 1
    for kwargs in ({"alpha": 0.4}, {"weights": [0.3, 0.7]}, {"masks": [mask, 1 - mask]}):
        chosen = styles if "alpha" not in kwargs else styles[:1]
        torch.testing.assert_close(fresh.transfer(content, chosen, **kwargs), plain.transfer(content, chosen, **kwargs),
                                   atol=1e-5, rtol=1e-4)
    trained = AdaINStylizer(encoder, random_decoder, device="cpu", precision="fp32",
                            transform=random_transform(256, 8).float())
    assert (trained.transfer(content, styles[:1]) - plain.transfer(content, styles[:1])).abs().max() > 1e-3
    # alpha 0 decodes the content's own features, whatever the transform
    torch.testing.assert_close(trained.transfer(content, styles[:1], alpha=0.0), plain.transfer(content, styles[:1], alpha=0.0))
    with pytest.raises(StylekitError, match="channels"):
        AdaINStylizer(encoder, random_decoder, device="cpu", transform=CovarianceTransform(64, 8))


def test_detail_share_travels_in_the_file_and_reaches_the_pyramid(tmp_path, encoder, random_decoder):
    t = random_transform(256, 8).float()
    save_tensors(tmp_path / "shared.safetensors", t.state_dict(), {"kind": "adain-transform", "detail_share": "0.3"})
    save_tensors(tmp_path / "bare.safetensors", t.state_dict(), {"kind": "adain-transform"})
    with_share = AdaINStylizer(encoder, random_decoder, device="cpu", precision="fp32",
                               transform=load_transform(tmp_path / "shared.safetensors"))
    bare = AdaINStylizer(encoder, random_decoder, device="cpu", precision="fp32",
                         transform=load_transform(tmp_path / "bare.safetensors"))
    assert with_share.detail_share == 0.3 and bare.detail_share == pyramid.DETAIL == 0.5
    content = torch.rand(1, 3, 256, 192, generator=torch.Generator().manual_seed(0))  # two pyramid levels
    style = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    out = with_share.transfer_coarse_to_fine(content, [style])
    assert (out - bare.transfer_coarse_to_fine(content, [style])).abs().max() > 1e-3
    bare.detail_share = 0.3  # the same stylizer told the same share gives the same picture
    torch.testing.assert_close(bare.transfer_coarse_to_fine(content, [style]), out)


def test_bad_detail_shares_are_refused(tmp_path):
    with pytest.raises(StylekitError, match="detail_share"):
        CovarianceTransform(6, 3, detail_share=1.5)
    save_tensors(tmp_path / "t.safetensors", random_transform().float().state_dict(),
                 {"kind": "adain-transform", "detail_share": "half"})
    with pytest.raises(StylekitError, match="detail_share"):
        load_transform(tmp_path / "t.safetensors")


def test_load_runs_the_shipped_transform_with_the_shipped_decoder_only(decoder_file, tmp_path):
    from safetensors import safe_open

    import stylekit
    from stylekit.weights import PACKAGE_DATA

    shipped_file = PACKAGE_DATA / json.loads((PACKAGE_DATA / "weights.json").read_text())["adain-transform-relu3_1"]["file"]
    with safe_open(str(shipped_file), "pt") as fh:
        share = float(fh.metadata()["detail_share"])
        compress = fh.get_tensor("compress.weight").float()
    default = stylekit.load("adain", device="cpu")
    assert default.transform is not None and default.detail_share == share
    torch.testing.assert_close(default.transform.compress.weight, compress)
    plain = stylekit.load("adain", device="cpu", transform_weights=False)
    assert plain.transform is None and plain.detail_share == pyramid.DETAIL
    # a decoder of one's own: the shipped transform was trained for the shipped decoder, so plain AdaIN
    assert stylekit.load("adain", device="cpu", weights=decoder_file).transform is None
    chosen = stylekit.load("adain", device="cpu", weights=decoder_file, transform_weights=shipped_file)
    torch.testing.assert_close(chosen.transform.compress.weight, compress)

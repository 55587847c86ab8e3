"""Style swap at S x S content and style: each search of
:func:`stylekit.patch_swap.swap_argmax`, how often it picks another patch
than the argmax of float64 scores on these real relu3_1 features, and the
swap's share of the whole style-swap job with the inverse network."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from stylekit.adain.model import DEFAULT_DECODER
from stylekit.decoder import load_decoder
from stylekit.errors import StylekitError
from stylekit.patch_swap import MAX_BYTES, assemble_patches, search_method, swap_argmax
from stylekit.pipeline import pad_to_multiple
from stylekit.style_swap.model import INVERSE_WEIGHTS, StyleSwapStylizer
from stylekit.timing import summary, time_call, timed_runs
from stylekit.weights import load_encoder, resolve

from .common import Threads

PATCH, STRIDE, EPS = 3, 1, 1e-8


def variants(cf: torch.Tensor, sf: torch.Tensor) -> list[tuple[str, str, object]]:
    """(label, scores, search) for every search measured; the first is the
    reference of the agreement column: the argmax of float64 scores."""
    screens = search_method(cf, sf, PATCH, STRIDE) == ("gemm", "bf16")
    default = " (default)"

    def search(c, s, **options):
        return lambda: swap_argmax(c, s, PATCH, STRIDE, eps=EPS, max_bytes=MAX_BYTES, **options)

    return [
        ("gemm, float64 scores (reference)", "exact", search(cf.double(), sf.double(), impl="gemm", scores="exact")),
        ("bf16 screening + float64 decision" + (default if screens else ""), "bf16", search(cf, sf, scores="bf16")),
        ("gemm, fp32 scores" + ("" if screens else default), "exact", search(cf, sf, impl="gemm", scores="exact")),
        ("conv, fp32 scores", "exact", search(cf, sf, impl="conv", scores="exact")),
        ("gemm, chunk 1024", "exact", search(cf, sf, impl="gemm", scores="exact", chunk_size=1024)),
        ("conv, chunk 1024", "exact", search(cf, sf, impl="conv", scores="exact", chunk_size=1024)),
    ]


def agreement(index: torch.Tensor, reference: torch.Tensor, cf: torch.Tensor, sf: torch.Tensor) -> dict:
    """How many content patches chose another style patch than ``reference``,
    and how much worse (float64 score, relative) the chosen patches are. The
    scores are recomputed here from ``F.unfold``, independently of the search."""
    differ = (index != reference).flatten()
    count = int(differ.sum())
    result = {"patches": differ.numel(), "disagree": count, "disagree_fraction": count / differ.numel()}
    if count:
        content = F.unfold(cf.double(), PATCH, stride=STRIDE)[0].t()[differ]
        style = F.unfold(sf.double(), PATCH, stride=STRIDE)[0].t()

        def scores(idx):
            patches = style[idx.flatten()[differ]]
            return (content * patches).sum(1) / patches.norm(dim=1).clamp_min(EPS)

        best, got = scores(reference), scores(index)
        deficit = ((best - got) / best.abs().clamp_min(1e-30)).float()
        result.update(max_relative_score_deficit=deficit.max().item(),
                      median_relative_score_deficit=deficit.median().item())
    return result


def inverse_network(inverse_weights, adain_weights) -> tuple[str, str]:
    """(file, label): the given inverse network, else the shipped one, else the
    AdaIN decoder as a stand-in (the same architecture and cost)."""
    if inverse_weights is not None:
        return inverse_weights, str(inverse_weights)
    try:
        found = resolve(INVERSE_WEIGHTS)
        return found, f"the shipped one ({found})"
    except StylekitError:
        found = adain_weights or resolve(DEFAULT_DECODER)
        return found, f"stand-in: the AdaIN decoder ({found})"


def job_runs(model: StyleSwapStylizer, content: torch.Tensor, prepared: torch.Tensor, repeats: int) -> tuple[dict, list]:
    """The feed-forward job (:meth:`StyleSwapStylizer.transfer_prepared`'s
    steps: encode, swap, decode) timed ``repeats`` times, the swap timed
    inside each run: the swap and its job measured together, so a slow moment
    of the machine shows in both."""
    totals, swaps = [], []
    for _ in range(repeats):
        padded = pad_to_multiple(content, model.multiple)
        encode_s, content_feat = time_call(lambda: model.networks.encode_image(padded))
        with torch.no_grad():
            swap_s, target = time_call(lambda: model.target_features(content_feat, [prepared]))
        decode_s, _ = time_call(lambda: model.networks.decode(target, content.shape[-2:]))
        totals.append(encode_s + swap_s + decode_s)
        swaps.append(swap_s)
    return summary(totals), swaps


def swap_section(content, style, *, encoder_weights=None, inverse_weights=None, adain_weights=None, repeats: int = 1,
                 threads: int | None = None, say=print) -> dict:
    """The searches and their agreement, and the swap's share of the job."""
    size = content.shape[-1]
    out = {"patch_size": PATCH, "stride": STRIDE, "size": size, "variants": []}
    with Threads(threads), torch.no_grad():
        encoder = load_encoder(encoder_weights, last_layer="relu3_1")
        cf, sf = encoder.encode(content, "relu3_1"), encoder.encode(style, "relu3_1")
        out["content_features"], out["style_features"] = list(cf.shape), list(sf.shape)
        hs, ws = sf.shape[-2:]
        ho, wo = cf.shape[-2] - PATCH + 1, cf.shape[-1] - PATCH + 1
        count = ((hs - PATCH) // STRIDE + 1) * ((ws - PATCH) // STRIDE + 1)
        out["score_flops"] = 2 * ho * wo * count * cf.shape[1] * PATCH * PATCH
        reference = None
        for name, kind, search in variants(cf, sf):
            runs, index = [], None
            for _ in range(repeats):
                seconds, index = time_call(search)
                runs.append(seconds)
            run = summary(runs)
            if reference is None:
                reference = index
            row = {"variant": name, "scores": kind, **run, "gflops_per_s": out["score_flops"] / run["best"] / 1e9,
                   "agreement": agreement(index, reference, cf, sf)}
            out["variants"].append(row)
            say(f"  swap argmax {name}: {run['best']:.4g} s, "
                f"{row['agreement']['disagree_fraction']:.3%} of patches differ from the exact argmax")
        out["assemble"] = timed_runs(lambda: assemble_patches(sf, reference, PATCH, STRIDE, cf.shape[-2:]), repeats, 0)
        default = next(v for v in out["variants"] if v["variant"].endswith("(default)"))
        out["default_variant"] = default["variant"]
        out["swap_s"] = default["best"] + out["assemble"]["best"]
        inverse_file, out["inverse_network"] = inverse_network(inverse_weights, adain_weights)
        model = StyleSwapStylizer(encoder, load_decoder(inverse_file), "cpu")
        prepared = model.prepare_style(style)
        job, swaps = job_runs(model, content, prepared, repeats)
        out["job_without_style_encoding"] = job
        out["swap_in_job"] = swaps
        out["swap_fraction"] = statistics.median([s / j for s, j in zip(swaps, job["runs"])])
        out["job_with_style_encoding"] = timed_runs(lambda: model.transfer(content, [style]), repeats, 0)
        say(f"  style swap {size}/{size}: the swap takes {out['swap_fraction']:.0%} of the job "
            f"({job['best']:.4g} s; paper: ~95%)")
    return out

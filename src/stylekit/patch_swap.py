"""Style swap's patch search (Chen & Schmidt 2016): every content patch is
replaced by the style patch with the highest normalised cross-correlation,
and the overlapping chosen patches are averaged.

:func:`style_swap` is the whole operation. Its two halves are public for
callers that time or inspect them: :func:`swap_argmax` (the search) and
:func:`assemble_patches` (the average); :func:`search_method` says which
search ``impl="auto", scores="auto"`` runs for given inputs.

Three searches find the same argmax: a convolution of the content by chunks
of style patches (``impl="conv"``), GEMMs of one fixed shape
(``impl="gemm"``), and bf16 screening with a float64 decision
(``scores="bf16"``). docs/performance.md ("Style swap") measures them and
derives the screening's error bound.

>>> content = torch.arange(16.0).view(1, 1, 4, 4)
>>> style = torch.ones(1, 1, 3, 3)
>>> style_swap(content, style, patch_size=3).shape
torch.Size([1, 1, 4, 4])
>>> swap_argmax(content, style, patch_size=3).tolist()  # one style patch: every content patch takes it
[[[0, 0], [0, 0]]]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .checks import check_choice, check_feature_map, check_int, check_number
from .errors import StylekitError

#: The exact search of ``impl="auto"``.
SWAP_IMPL = "gemm"
IMPLS = ("auto", "conv", "gemm")
SCORES = ("auto", "exact", "bf16")
#: The default memory budget of the scores (bytes).
MAX_BYTES = 512 * 2**20
#: Style patches per GEMM in the ``gemm`` search (fixed, so that every score is
#: computed by a GEMM of the same shape).
SWAP_BLOCK = 512
#: Content patches per GEMM (about): whole rows of the patch grid at a time.
CONTENT_BLOCK = 4096
#: ``scores="auto"`` screens in bf16 from this many (content, style) patch
#: pairs on: below it the fixed costs of screening outweigh the cheaper GEMM
#: (on real relu3_1 features: equal at 192 px images, 2,116 x 2,116 patches;
#: 1.9x faster at 512 px).
SCREEN_MIN_PAIRS = 2**22
#: Content patches whose candidates (after screening) exceed this many are
#: scored in float64 against every style patch instead of one by one.
SCREEN_MAX_CANDIDATES = 128
#: Columns (style patches) of one screening GEMM: bounds the bf16 scores held at once.
SCREEN_COLUMNS = 2048
#: Style patches turned into bf16 screening rows at a time (about; whole grid rows).
SCREEN_BUILD_ROWS = 4096
#: Unit roundoff of bfloat16 (8 significant bits) and of float32.
_BF16_U, _FP32_U = 2.0**-8, 2.0**-24


def style_swap(
    content_feat: torch.Tensor,
    style_feat: torch.Tensor,
    patch_size: int = 3,
    stride: int = 1,
    chunk_size: int | None = None,
    *,
    eps: float = 1e-8,
    max_bytes: int = MAX_BYTES,
    impl: str = "auto",
    scores: str = "auto",
) -> torch.Tensor:
    """Replace every content patch by the best-matching style patch, then
    average the overlapping patches.

    ``content_feat`` is ``(N, C, H, W)``, ``style_feat`` ``(1, C, Hs, Ws)``
    (one style for the whole batch; H x W may differ). Patches are
    ``patch_size`` x ``patch_size`` over all channels, taken every ``stride``
    positions (``stride`` at most ``patch_size``, so every position is
    covered). A style patch ``s_j`` scores ``<c, s_j> / max(||s_j||, eps)``
    against a content patch ``c`` (the content patch's own norm would not
    change the argmax); ``eps`` keeps all-zero style patches (common after a
    ReLU) at score 0 instead of NaN.

    Ties: the lowest style-patch index wins, patches being numbered row-major
    over the style's patch grid (the rule of ``torch.argmax``). All-zero
    content patches score 0 against every style patch and so take patch 0.

    Content positions: patches start at 0, stride, 2 * stride, ...; when the
    last one would not reach the bottom/right border, the content map is
    replicate-padded there so it does, and the output is cropped back. The
    output is ``(N, C, H, W)``: each position is the mean of the
    (unnormalised) chosen style patches that cover it.

    Memory: scores are computed for ``chunk_size`` style patches at a time
    (default: as many as fit in ``max_bytes``), keeping a running maximum;
    the output is assembled from the winning indices by gathering style
    values, so neither the one-hot tensor nor the full patch set is ever
    materialised. Any chunking gives the same result.

    ``impl`` (``auto``, ``conv``, ``gemm``) and ``scores`` (``auto``,
    ``exact``, ``bf16``) choose the search (see :func:`search_method`); every
    choice is exact: the argmax of the scores in the input's dtype, or for
    ``bf16`` of the scores in float64.

    The argmax has no gradient: the output is differentiable with respect to
    ``style_feat`` (through the gathered values) and constant in
    ``content_feat``.
    """
    index = swap_argmax(content_feat, style_feat, patch_size, stride, chunk_size, eps=eps, max_bytes=max_bytes,
                        impl=impl, scores=scores)
    return assemble_patches(style_feat, index, patch_size, stride, content_feat.shape[-2:])


def search_method(content_feat: torch.Tensor, style_feat: torch.Tensor, patch_size: int = 3, stride: int = 1,
                  impl: str = "auto", scores: str = "auto") -> tuple[str, str]:
    """The ``(impl, scores)`` pair :func:`swap_argmax` runs for these choices.

    ``scores="auto"`` is ``bf16`` on a CPU that runs bf16 natively
    (:func:`stylekit.devices.cpu_has_fast_bf16`) for at least
    :data:`SCREEN_MIN_PAIRS` patch pairs, else ``exact`` (also on CUDA, whose
    bf16 GEMMs may reduce in reduced precision, and for an ``impl`` named
    explicitly). ``impl="auto"`` is :data:`SWAP_IMPL`; ``impl`` applies to
    ``exact`` scores only.
    """
    check_choice(impl, "impl", IMPLS)
    check_choice(scores, "scores", SCORES)
    if scores == "auto":
        from .devices import cpu_has_fast_bf16

        p, s = patch_size, stride
        (n, _, h, w), (hs, ws) = content_feat.shape, style_feat.shape[2:]
        pairs = n * _patch_grid(h, p, s) * _patch_grid(w, p, s) * _patch_grid(hs, p, s) * _patch_grid(ws, p, s)
        native = content_feat.device.type == "cpu" and cpu_has_fast_bf16()
        scores = "bf16" if impl == "auto" and native and pairs >= SCREEN_MIN_PAIRS else "exact"
    return (SWAP_IMPL if impl == "auto" else impl), scores


def swap_argmax(
    content_feat: torch.Tensor,
    style_feat: torch.Tensor,
    patch_size: int = 3,
    stride: int = 1,
    chunk_size: int | None = None,
    *,
    eps: float = 1e-8,
    max_bytes: int = MAX_BYTES,
    impl: str = "auto",
    scores: str = "auto",
) -> torch.Tensor:
    """The search of :func:`style_swap` (same arguments): for every content
    patch the index of its best style patch, as an ``(N, Ho, Wo)`` long tensor
    over the content's patch grid (``Ho = ceil((H - p) / stride) + 1``)."""
    _check_swap_inputs(content_feat, style_feat, patch_size, stride, chunk_size, eps, max_bytes)
    impl, scores = search_method(content_feat, style_feat, patch_size, stride, impl, scores)
    args = (content_feat, style_feat, patch_size, stride, chunk_size, eps, max_bytes)
    if scores == "bf16":
        return _argmax_screened(*args)[0]
    return (_argmax_gemm if impl == "gemm" else _argmax_conv)(*args)[0]


def assemble_patches(style_feat: torch.Tensor, index: torch.Tensor, patch_size: int = 3, stride: int = 1,
                     out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """The average of the style patches ``index`` (from :func:`swap_argmax`) at
    every position: ``(N, C, H, W)``, cropped to ``out_hw`` (default: the
    patch grid's full extent). Depends on ``index`` only, not on how it was found."""
    ho, wo = index.shape[-2:]
    grid_hw = (ho - 1) * stride + patch_size, (wo - 1) * stride + patch_size
    return _assemble(style_feat, index, patch_size, stride, (ho, wo), tuple(out_hw or grid_hw))


def _check_swap_inputs(content_feat, style_feat, p, s, chunk_size, eps, max_bytes) -> None:
    check_feature_map(content_feat, "content_feat")
    check_feature_map(style_feat, "style_feat")
    check_int(p, "patch_size", 1)
    check_int(s, "stride", 1)
    if chunk_size is not None:
        check_int(chunk_size, "chunk_size", 1)
    check_int(max_bytes, "max_bytes", 1)
    check_number(eps, "eps", positive=True)
    if s > p:
        raise StylekitError(f"stride ({s}) must not exceed patch_size ({p}): larger strides leave positions no patch covers")
    if style_feat.shape[0] != 1:
        raise StylekitError(f"style_feat must hold one style (batch size 1), got a batch of {style_feat.shape[0]}")
    if content_feat.shape[1] != style_feat.shape[1]:
        raise StylekitError(
            f"content and style features must have the same channels, got {content_feat.shape[1]} and {style_feat.shape[1]}"
        )
    if content_feat.dtype != style_feat.dtype or content_feat.device != style_feat.device:
        raise StylekitError(
            f"content and style features must share dtype and device, got {content_feat.dtype} on "
            f"{content_feat.device} and {style_feat.dtype} on {style_feat.device}"
        )
    h, w = content_feat.shape[2:]
    hs, ws = style_feat.shape[2:]
    if hs < p or ws < p:
        raise StylekitError(f"patch_size {p} is larger than the style feature map ({ws}x{hs})")
    if h < p or w < p:
        raise StylekitError(f"patch_size {p} is larger than the content feature map ({w}x{h})")
    for name, t in (("content_feat", content_feat), ("style_feat", style_feat)):
        if not bool(torch.isfinite(t).all()):
            raise StylekitError(f"{name} contains NaN or infinite values")


def _patch_grid(size: int, patch_size: int, stride: int) -> int:
    """Patches along one side when patches start at 0, stride, 2*stride, ... and stay inside."""
    return (size - patch_size) // stride + 1


def _swap_setup(content, style, p, s, eps):
    """Shared by both implementations: the content padded so the last patch
    reaches the border, the patch grids and the style patches' 1 / norm."""
    n, c, h, w = content.shape
    hs, ws = style.shape[2:]
    ho, wo = -(-(h - p) // s) + 1, -(-(w - p) // s) + 1  # ceil: the last patch reaches the border
    pad_h, pad_w = (ho - 1) * s + p - h, (wo - 1) * s + p - w
    if pad_h or pad_w:
        content = F.pad(content, (0, pad_w, 0, pad_h), mode="replicate")
    gh, gw = _patch_grid(hs, p, s), _patch_grid(ws, p, s)
    style = style.detach()[0]
    # Scores are <c, s_j> times 1 / ||s_j|| rather than <c, s_j / ||s_j||>: equal
    # true scores (duplicate patches, integer data) then stay exactly equal in
    # float, so the tie rule decides them rather than rounding noise.
    inv_norms = 1.0 / _box_sum((style * style).sum(0), p, s).flatten().sqrt().clamp_min(eps)
    return content, style, (ho, wo), (gh, gw), inv_norms


def _keep_first_max(best, best_index, value, arg, offset):
    """A running maximum over blocks of style patches: a later block's maximum
    (``value`` at ``arg + offset``, already the first within its block) replaces
    the best only when strictly greater, so ties keep the lowest index."""
    better = value > best
    return torch.where(better, value, best), torch.where(better, arg + offset, best_index)


def _style_patches(style, j, p, s, gw):
    """(k, C*p*p) rows: style patches ``j`` (row-major over the patch grid),
    each flattened channel-major like ``F.unfold``."""
    offsets = torch.arange(p, device=style.device)
    rows = (j // gw * s)[:, None] + offsets
    cols = (j % gw * s)[:, None] + offsets
    return style[:, rows[:, :, None], cols[:, None, :]].transpose(0, 1).reshape(len(j), -1)


@torch.no_grad()
def _argmax_gemm(content, style, p, s, chunk_size, eps, max_bytes):
    """:func:`_argmax_conv`'s argmax by GEMMs: (content patches of a few grid rows)
    x (SWAP_BLOCK style patches), the running maximum kept per content patch.

    Memory: ``chunk_size`` style patches are held unfolded at a time (default:
    as many as fit in ``max_bytes`` next to one content block); scores exist
    for one (content block x SWAP_BLOCK) at a time.
    """
    n, c = content.shape[:2]
    content, style, (ho, wo), (gh, gw), inv_norms = _swap_setup(content, style, p, s, eps)
    count, dim = gh * gw, c * p * p
    item = content.element_size()
    rows_per_block = max(1, CONTENT_BLOCK // wo)
    block_bytes = item * dim * rows_per_block * wo
    if chunk_size is None:
        chunk_size = max(1, (max_bytes - block_bytes) // (item * dim))
    chunk = -(-min(chunk_size, count) // SWAP_BLOCK) * SWAP_BLOCK  # whole GEMM blocks

    best = content.new_full((n, ho * wo), -math.inf)
    best_index = torch.zeros((n, ho * wo), dtype=torch.long, device=content.device)
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        patches = _padded_patches(style, start, stop, p, s, gw)
        weights = patches.t()  # (dim, k): a transposed view; the GEMM reads it in place
        scale = inv_norms[start:stop]
        for i in range(n):
            for y0 in range(0, ho, rows_per_block):
                y1 = min(ho, y0 + rows_per_block)
                cols = _content_patches(content, i, y0, y1, p, s)
                where = slice(y0 * wo, y1 * wo)
                for b in range(0, stop - start, SWAP_BLOCK):
                    valid = min(SWAP_BLOCK, stop - start - b)
                    sc = (cols @ weights[:, b : b + SWAP_BLOCK])[:, :valid]
                    sc.mul_(scale[b : b + valid])
                    best[i, where], best_index[i, where] = _keep_first_max(
                        best[i, where], best_index[i, where], *sc.max(dim=1), start + b)
    return best_index.view(n, ho, wo), (ho, wo)


def _padded_patches(style, start, stop, p, s, gw):
    """Style patches ``start:stop`` as (k, dim) rows, zero rows added up to whole SWAP_BLOCKs."""
    patches = _style_patches(style, torch.arange(start, stop, device=style.device), p, s, gw)
    short = -(-(stop - start) // SWAP_BLOCK) * SWAP_BLOCK - (stop - start)
    return torch.cat([patches, patches.new_zeros(short, patches.shape[1])]) if short else patches


def _content_patches(content, i, y0, y1, p, s):
    """(rows * wo, dim): the content patches of patch-grid rows ``y0:y1`` of image ``i``."""
    slab = content[i : i + 1, :, y0 * s : (y1 - 1) * s + p]
    return F.unfold(slab, p, stride=s)[0].t()


def _box_sum(values: torch.Tensor, p: int, s: int) -> torch.Tensor:
    """(Ho, Wo): sums of an (H, W) map over the p x p patches of the grid."""
    return F.conv2d(values[None, None], values.new_ones(1, 1, p, p), stride=s)[0, 0]


def _patch_rows(hwc: torch.Tensor, p: int, s: int) -> torch.Tensor:
    """(rows * cols, p * p * C): every p x p patch (stride s) of an (H, W, C)
    map, row-major over the patch grid, each flattened (p, p, C)."""
    h, w, c = hwc.shape
    grid = ((h - p) // s + 1, (w - p) // s + 1)
    hwc = hwc.contiguous()
    view = hwc.as_strided((*grid, p, p, c), (s * w * c, s * c, w * c, c, 1))
    return view.reshape(grid[0] * grid[1], p * p * c)


def _screen_block(cols_bf16, bound, zero, chunks, screening_patches):
    """Screening of one block of content patches: the (row, style patch) pairs
    whose bf16 score is at least the row's :func:`_screen_line`, and the rows
    with more such pairs than :data:`SCREEN_MAX_CANDIDATES` (whose pairs are
    dropped: at most that many pairs per row are held, plus one GEMM's worth
    while it is sorted out). All-zero rows (``zero``) take no candidates."""
    rows = cols_bf16.shape[0]
    device = cols_bf16.device
    best = torch.full((rows,), -math.inf, dtype=torch.float64, device=device)
    counts = torch.zeros(rows, dtype=torch.long, device=device)
    overflow = torch.zeros(rows, dtype=torch.bool, device=device)
    never = torch.where(zero, math.inf, -math.inf).to(torch.bfloat16)  # all-zero rows: no line is low enough
    kept_rows, kept_cols, kept_scores = [], [], []
    for start, stop in chunks:
        scaled = screening_patches(start, stop)
        for b in range(0, stop - start, SCREEN_COLUMNS):
            sc = cols_bf16 @ scaled[b : b + SCREEN_COLUMNS].t()  # (rows, k) bf16
            best = torch.maximum(best, sc.max(dim=1).values.double())
            hit = sc >= torch.maximum(_round_down_bf16(_screen_line(best, bound)), never)[:, None]
            r, j = hit.nonzero(as_tuple=True)
            counts += torch.bincount(r, minlength=rows)
            over = counts > SCREEN_MAX_CANDIDATES
            if bool(over.any()):  # rare on real features: a flat style, or patches scoring alike
                overflow |= over
                keep = ~overflow[r]
                r, j = r[keep], j[keep]
            kept_rows.append(r)
            kept_cols.append(j + (start + b))
            kept_scores.append(sc[r, j])
    # a row with no candidate cannot happen (its best is always one); if rounding ever made it so,
    # it goes to the float64 fallback rather than to patch 0
    overflow |= (counts == 0) & ~zero
    r, j, score = torch.cat(kept_rows), torch.cat(kept_cols), torch.cat(kept_scores).double()
    final = (score >= _screen_line(best, bound)[r]) & ~overflow[r]  # against the final best: fewer pairs
    return r[final], j[final], overflow


def _screen_line(best: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """The lowest bf16 score the true best can have, for rows whose best bf16
    score is ``best`` and whose error bound is ``bound`` (float64; increasing in ``best``)."""
    u = _BF16_U * 1.01
    a = best - u * best.abs() / (1 - u) - 2 * bound
    return a - u * a.abs()


def _decide_block(found, zero, content_hwc, style_hwc, inv64, origin, p, s, gw, count):
    """The float64 argmax of one block of content patches from its screened
    candidate pairs; overflowing rows against every style patch. The maps are
    (H, W, C)."""
    r, j, overflow = found
    rows = zero.shape[0]
    device = zero.device
    y0, wo = origin
    out = torch.zeros(rows, dtype=torch.long, device=device)
    alone = torch.bincount(r, minlength=rows)[r] == 1  # a single candidate is the best: nothing to compare
    out[r[alone]] = j[alone]
    r, j = r[~alone], j[~alone]
    if r.numel():
        exact = torch.empty(r.numel(), dtype=torch.float64, device=device)
        step = 1024  # pairs gathered at a time (float64 patches: 18 KiB each at 256 channels)
        for a in range(0, r.numel(), step):
            rr, jj = r[a : a + step], j[a : a + step]
            c = _pixel_patches(content_hwc, (y0 + rr // wo) * s, rr % wo * s, p)
            t = _pixel_patches(style_hwc, jj // gw * s, jj % gw * s, p)
            exact[a : a + step] = torch.bmm(c[:, None], t[:, :, None]).flatten() * inv64[jj]  # a batch of dots
        best = torch.full((rows,), -math.inf, dtype=torch.float64, device=device)
        best.scatter_reduce_(0, r, exact, "amax")
        winner = exact == best[r]  # ties: the lowest index among the best
        out.scatter_reduce_(0, r[winner], j[winner], "amin", include_self=False)
    heavy = (overflow & ~zero).nonzero(as_tuple=True)[0]
    if heavy.numel():  # too many candidates: every style patch in float64
        c = _pixel_patches(content_hwc, (y0 + heavy // wo) * s, heavy % wo * s, p)
        out[heavy] = _argmax64(c, style_hwc, inv64, count, p, s, gw)
    out[zero] = 0
    return out


def _pixel_patches(hwc, top, left, p):
    """(k, p * p * C) float64 rows: the p x p patches at (top, left) of an
    (H, W, C) map, flattened (p, p, C), gathered a whole pixel (C values) at a
    time (and converted after the gather: the maps stay in their dtype)."""
    h, w, c = hwc.shape
    offsets = torch.arange(p, device=hwc.device)
    flat = ((top[:, None] + offsets) * w)[:, :, None] + (left[:, None] + offsets)[:, None, :]  # (k, p, p)
    return hwc.view(h * w, c).index_select(0, flat.flatten()).view(len(top), p * p * c).double()


def _argmax64(cols64, style_hwc, inv64, count, p, s, gw):
    """The first maximum of float64 scores of (p, p, C)-flattened content
    patches against every style patch, by GEMMs of SWAP_BLOCK style patches
    (of one shape, as in the exact GEMM path, so equal patches get equal
    scores wherever they sit)."""
    best = torch.full((cols64.shape[0],), -math.inf, dtype=torch.float64, device=cols64.device)
    best_index = torch.zeros(cols64.shape[0], dtype=torch.long, device=cols64.device)
    for start in range(0, count, SWAP_BLOCK):
        j = torch.arange(start, min(start + SWAP_BLOCK, count), device=cols64.device)
        t = _pixel_patches(style_hwc, j // gw * s, j % gw * s, p)
        if len(j) < SWAP_BLOCK:
            t = torch.cat([t, t.new_zeros(SWAP_BLOCK - len(j), t.shape[1])])
        sc = (cols64 @ t.t())[:, : len(j)] * inv64[j]
        best, best_index = _keep_first_max(best, best_index, *sc.max(dim=1), start)
    return best_index


def _round_down_bf16(x: torch.Tensor) -> torch.Tensor:
    """The largest bfloat16 values not above the float64 ``x`` (so that a bf16
    comparison with them keeps everything the float64 one keeps)."""
    down = x.to(torch.bfloat16)
    over = down.double() > x
    return torch.where(over, torch.nextafter(down, torch.full_like(down, -math.inf)), down)


@torch.no_grad()
def _argmax_conv(content, style, p, s, chunk_size, eps, max_bytes):
    """Index of the best style patch for every content patch, (N, Ho, Wo), and (Ho, Wo):
    the content convolved with chunks of style patches."""
    n, c = content.shape[:2]
    content, style, (ho, wo), (gh, gw), inv_norms = _swap_setup(content, style, p, s, eps)
    count = gh * gw

    item = content.element_size()
    if chunk_size is None:
        # The convolution holds a chunk's scores twice at its peak (oneDNN writes a
        # blocked layout and reorders it; the fallback builds an im2col buffer of
        # similar size): measured, so counted.
        chunk_size = max(1, max_bytes // (item * (2 * n * ho * wo + c * p * p)))
    chunk_size = min(chunk_size, count)

    best = content.new_full((n, ho * wo), -math.inf)
    best_index = torch.zeros((n, ho * wo), dtype=torch.long, device=content.device)
    offsets = torch.arange(p, device=content.device)
    for start in range(0, count, chunk_size):
        j = torch.arange(start, min(start + chunk_size, count), device=content.device)
        rows = (j // gw * s)[:, None] + offsets  # (k, p) feature rows of each patch
        cols = (j % gw * s)[:, None] + offsets
        filters = style[:, rows[:, :, None], cols[:, None, :]].transpose(0, 1).contiguous()  # (k, C, p, p)
        scores = F.conv2d(content, filters, stride=s)
        scores.mul_(inv_norms[j].view(1, -1, 1, 1))
        best, best_index = _keep_first_max(best, best_index, *scores.flatten(2).max(dim=1), start)
        del scores, filters
    return best_index.view(n, ho, wo), (ho, wo)


def _assemble(style, index, p, s, grid_hw, out_hw):
    """Average the chosen style patches, position by position, from their indices.

    Gathers one patch offset at a time (memory: one (N, C, Ho, Wo) tensor) and
    adds offsets in a fixed order, so the result depends on ``index`` only.
    """
    n = index.shape[0]
    _, c, hs, ws = style.shape
    ho, wo = grid_hw
    gw = _patch_grid(ws, p, s)
    top_left = (index // gw * s) * ws + index % gw * s  # flat style position of each chosen patch
    flat = style[0].reshape(c, hs * ws)
    hp, wp = (ho - 1) * s + p, (wo - 1) * s + p
    out = style.new_zeros((n, c, hp, wp))
    covered = style.new_zeros((hp, wp))
    for dy in range(p):
        for dx in range(p):
            values = flat.index_select(1, (top_left + dy * ws + dx).flatten())
            region = (slice(dy, dy + (ho - 1) * s + 1, s), slice(dx, dx + (wo - 1) * s + 1, s))
            out[(..., *region)] += values.view(c, n, ho, wo).transpose(0, 1)
            covered[region] += 1
    h, w = out_hw
    return out[..., :h, :w] / covered[:h, :w]


@torch.no_grad()
def _argmax_screened(content, style, p, s, chunk_size, eps, max_bytes):
    """The exact argmax (scores in float64) found by bf16 screening
    (``scores="bf16"``; docs/performance.md derives the bound).

    For a content patch ``c`` and a style patch scaled to ``t_j = s_j / max(||s_j||, eps)``
    (``||t_j|| <= 1``), the GEMM computes ``bf16(acc_j)``, ``acc_j`` the fp32
    accumulation of ``c' . t'_j`` (``c = c' + dc``, ``t_j = t'_j + dt_j``: the
    bf16 roundings, ``||dc||`` measured per patch, ``||dt_j|| <= D`` measured
    over the style, or ``u = 2**-8`` when its patches are not held at once).
    Then ``|acc_j - c . t_j| <= E0 = ||dc|| (1 + D) + ||c'|| D + ||dc|| D +
    g_d ||c'|| (1 + D)`` (``g_d = d u32 / (1 - d u32)`` for the fp32
    accumulation; enlarged by 1 %) for every ``j``, and ``|bf16(x) - x| <= u |x|``.
    With ``M`` the best bf16 score, the true best ``j*`` has ``acc_j* >= A =
    M - u |M| / (1 - u) - 2 E0``, so its bf16 score is at least ``A - u |A|``:
    every style patch above that line is a candidate. A single candidate is
    the answer; several are scored again in float64.
    """
    n, c = content.shape[:2]
    content, style, (ho, wo), (gh, gw), _ = _swap_setup(content, style, p, s, eps)
    count, dim = gh * gw, c * p * p
    work = torch.float64 if content.dtype == torch.float64 else torch.float32  # bf16 rounding errors are exact here
    # patches are flattened (p, p, C) from channel-contiguous (H, W, C) maps: whole pixels copied at a time
    content_hwc, style_hwc = content.permute(0, 2, 3, 1).contiguous(), style.permute(1, 2, 0).contiguous()
    inv64 = 1.0 / _box_sum((style_hwc.double() ** 2).sum(-1), p, s).flatten().sqrt().clamp_min(eps)

    rows_per_block = max(1, CONTENT_BLOCK // wo)
    block_bytes = 2 * dim * rows_per_block * wo + 3 * SCREEN_COLUMNS * rows_per_block * wo
    if chunk_size is None:
        chunk_size = max(1, (max_bytes - block_bytes) // (2 * dim))
    grid_rows = max(1, min(chunk_size, count) // gw)  # style chunks: whole rows of its patch grid
    chunks = [(y0 * gw, min(gh, y0 + grid_rows) * gw) for y0 in range(0, gh, grid_rows)]
    cache = {} if len(chunks) == 1 or 2 * dim * count <= max_bytes // 2 else None  # reused by every content block

    def screening_patches(start, stop):
        if cache is not None and start in cache:
            return cache[start][0]
        scaled = torch.empty((stop - start, dim), dtype=torch.bfloat16, device=content.device)
        err = 0.0
        step = max(1, SCREEN_BUILD_ROWS // gw) * gw  # whole grid rows at a time: bounded float temporaries
        for a in range(start, stop, step):
            b = min(stop, a + step)
            patches = _patch_rows(style_hwc[a // gw * s : (b // gw - 1) * s + p].to(work), p, s)
            patches = patches * inv64[a:b, None].to(work)  # not in place: the rows may be a view of the style
            scaled[a - start : b - start] = patches
            err = max(err, float((patches - scaled[a - start : b - start].to(work)).norm(dim=1).max()))
        if cache is not None:
            cache[start] = scaled, err
        return scaled

    u, g = _BF16_U, dim * _FP32_U / (1 - dim * _FP32_U)
    if cache is not None:
        for start, stop in chunks:
            screening_patches(start, stop)
        # measured, plus the float32 scaling's own error against the float64 t_j
        dt = min(u, max(err for _, err in cache.values()) + 4 * _FP32_U)
    else:
        dt = u
    index = torch.zeros((n, ho * wo), dtype=torch.long, device=content.device)
    for i in range(n):
        image = content_hwc[i].to(work)
        image_bf16 = image.to(torch.bfloat16)
        norm_c = _box_sum((image_bf16.double() ** 2).sum(-1), p, s).sqrt().flatten()
        norm_dc = _box_sum(((image - image_bf16.to(work)).double() ** 2).sum(-1), p, s).sqrt().flatten()
        bound_all = 1.01 * (norm_dc * (1 + dt) + norm_c * dt + norm_dc * dt + g * norm_c * (1 + dt)) + 1e-30
        zero_all = (norm_c == 0) & (norm_dc == 0)  # all-zero patches score exactly 0 against every style patch
        for y0 in range(0, ho, rows_per_block):
            y1 = min(ho, y0 + rows_per_block)
            where = slice(y0 * wo, y1 * wo)
            cols_bf16 = _patch_rows(image_bf16[y0 * s : (y1 - 1) * s + p], p, s)  # (L, dim)
            found = _screen_block(cols_bf16, bound_all[where], zero_all[where], chunks, screening_patches)
            index[i, where] = _decide_block(found, zero_all[where], content_hwc[i], style_hwc, inv64,
                                            (y0, wo), p, s, gw, count)
    return index.view(n, ho, wo), (ho, wo)

"""Float64 reference formulas: the one place the tests' oracles live.

Each is written from the paper's formula with numpy loops and no stylekit
code, so a test that compares stylekit with one of these never checks
stylekit against itself. Inputs are torch tensors (any dtype), outputs
float64 numpy arrays unless said otherwise; :func:`close` compares.
"""

from __future__ import annotations

import math

import numpy as np
import torch

F64 = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-4, atol=1e-4)


def to_np(t) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float64)


def close(actual: torch.Tensor, expected, **tol) -> None:
    """``actual`` equals ``expected`` within ``tol`` (default :data:`F64`), in float64."""
    expected = torch.as_tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(actual.detach().to(torch.float64).cpu(), expected, **(tol or F64))


def rand(*shape, seed=0, dtype=torch.float64) -> torch.Tensor:
    """Seeded standard-normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------------------
# statistics and the normalisation family
# ---------------------------------------------------------------------------


def mean_std(x, eps=1e-5):
    """Per sample and channel: the mean over (H, W) and ``sqrt(biased variance + eps)``, each (N, C, 1, 1)."""
    a = to_np(x)
    n, c = a.shape[:2]
    mean, std = np.zeros((n, c, 1, 1)), np.zeros((n, c, 1, 1))
    for i in range(n):
        for j in range(c):
            vals = a[i, j].ravel()
            m = sum(vals) / len(vals)
            mean[i, j, 0, 0] = m
            std[i, j, 0, 0] = math.sqrt(sum((vals - m) ** 2) / len(vals) + eps)
    return mean, std


def masked_mean_std(x, mask, eps=1e-5):
    """:func:`mean_std` weighted by a (N, 1, H, W) mask."""
    a, w = to_np(x), to_np(mask)
    n, c, h, wd = a.shape
    mean, std = np.zeros((n, c, 1, 1)), np.zeros((n, c, 1, 1))
    for i in range(n):
        for j in range(c):
            tot = s = 0.0
            for y in range(h):
                for xx in range(wd):
                    tot += w[i, 0, y, xx]
                    s += w[i, 0, y, xx] * a[i, j, y, xx]
            m = s / tot
            v = sum(w[i, 0, y, xx] * (a[i, j, y, xx] - m) ** 2 for y in range(h) for xx in range(wd)) / tot
            mean[i, j, 0, 0] = m
            std[i, j, 0, 0] = math.sqrt(v + eps)
    return mean, std


def _affine(out, index, weight, bias):
    if weight is not None:
        out[index] *= float(weight[index[-1]].detach())
    if bias is not None:
        out[index] += float(bias[index[-1]].detach())


def batch_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalised over (N, H, W) per channel, then the per-channel affine map."""
    a = to_np(x)
    out = np.empty_like(a)
    for j in range(a.shape[1]):
        vals = a[:, j]
        m = vals.sum() / vals.size
        out[:, j] = (vals - m) / math.sqrt(((vals - m) ** 2).sum() / vals.size + eps)
        _affine(out, (slice(None), j), weight, bias)
    return out


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalised over (H, W) per sample and channel, then the per-channel affine map."""
    a = to_np(x)
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            vals = a[i, j]
            m = vals.sum() / vals.size
            out[i, j] = (vals - m) / math.sqrt(((vals - m) ** 2).sum() / vals.size + eps)
            _affine(out, (i, j), weight, bias)
    return out


def conditional_instance_norm(x, style_weights, weight, bias, eps=1e-5):
    """Instance norm whose affine parameters are the style-weighted sums of per-style rows."""
    a, sw, w, b = to_np(x), to_np(style_weights), to_np(weight), to_np(bias)
    normed = instance_norm(x, eps=eps)
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            gamma = sum(sw[i, s] * w[s, j] for s in range(w.shape[0]))
            beta = sum(sw[i, s] * b[s, j] for s in range(b.shape[0]))
            out[i, j] = normed[i, j] * gamma + beta
    return out


def adain_from_stats(content, s_mean, s_std, eps=1e-5):
    """``s_std * (c - mean(c)) / std(c) + s_mean`` (one style row for the batch, or one per sample)."""
    a, sm, ss = to_np(content), to_np(s_mean), to_np(s_std)
    c_mean, c_std = mean_std(content, eps)
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            k = i if sm.shape[0] > 1 else 0
            out[i, j] = ss[k, j, 0, 0] * (a[i, j] - c_mean[i, j, 0, 0]) / c_std[i, j, 0, 0] + sm[k, j, 0, 0]
    return out


def adain(content, style, eps=1e-5):
    """AdaIN (Huang & Belongie 2017, eq. 8): the content's statistics replaced by the style's."""
    s_mean, s_std = mean_std(style, eps)
    return adain_from_stats(content, s_mean, s_std, eps)


def covariance_transform(content, style, P, A, a, B, b, Q, eps=1e-5, mask=None):
    """The learned covariance transform on AdaIN, per sample, position by position:
    ``x_hat = (x - mu_c) / sigma_c``, ``z = P x_hat``, ``M = mat(A vec(cov(P s_hat)) + a) mat(B vec(cov(z)) + b)``,
    ``t = sigma_s * (x_hat + Q M z) + mu_s``; the content's statistics and covariance over ``mask`` when given
    (one style for the batch)."""
    x, st = to_np(content), to_np(style)
    P, A, a, B, b, Q = (to_np(t) for t in (P, A, a, B, b, Q))
    n, c, h, w = x.shape
    r = P.shape[0]
    m = np.ones((n, 1, h, w)) if mask is None else to_np(mask)
    c_mean, c_std = mean_std(content, eps) if mask is None else masked_mean_std(content, mask, eps)
    s_mean, s_std = mean_std(style, eps)

    def cov(vectors, weights):
        total = np.zeros((r, r))
        for v, wt in zip(vectors, weights):
            total += wt * np.outer(v, v)
        return total / sum(weights)

    s_vectors = [P @ ((st[0, :, y, xx] - s_mean[0, :, 0, 0]) / s_std[0, :, 0, 0])
                 for y in range(st.shape[2]) for xx in range(st.shape[3])]
    s_matrix = (A @ cov(s_vectors, [1.0] * len(s_vectors)).ravel() + a).reshape(r, r)
    out = np.empty_like(x)
    for i in range(n):
        normal = (x[i] - c_mean[i]) / c_std[i]
        z = np.einsum("rc,chw->rhw", P, normal)
        cells = [(y, xx) for y in range(h) for xx in range(w)]
        c_matrix = (B @ cov([z[:, y, xx] for y, xx in cells], [m[i, 0, y, xx] for y, xx in cells]).ravel() + b).reshape(r, r)
        moved = np.einsum("cr,rhw->chw", Q @ s_matrix @ c_matrix, z)
        out[i] = s_std[0] * (normal + moved) + s_mean[0]
    return out


def spade(x, gamma, beta, eps=1e-5):
    """SPADE: parameter-free batch norm, then ``* (1 + gamma) + beta`` per position."""
    return batch_norm(x, eps=eps) * (1 + to_np(gamma)) + to_np(beta)


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------


def gram_matrix(x, mask=None):
    """``sum_p m(p) f(p) f(p)^T / sum_p m(p)`` per sample (m = 1 without a mask): (N, C, C)."""
    a = to_np(x)
    n, c, h, w = a.shape
    m = np.ones((n, 1, h, w)) if mask is None else to_np(mask)
    out = np.zeros((n, c, c))
    for i in range(n):
        for y in range(h):
            for xx in range(w):
                f = a[i, :, y, xx]
                out[i] += m[i, 0, y, xx] * np.outer(f, f)
        out[i] /= m[i].sum()
    return out


def mse(a, b) -> float:
    a, b = to_np(a), to_np(b)
    return float(((a - b) ** 2).sum() / a.size)


def mean_std_style_loss(pred: dict, style: dict, layers, eps=1e-5) -> float:
    """AdaIN's style loss: per layer the squared error of the means plus that of the stds."""
    total = 0.0
    for layer in layers:
        (pm, ps), (sm, ss) = mean_std(pred[layer], eps), mean_std(style[layer], eps)
        total += mse(pm, np.broadcast_to(sm, pm.shape)) + mse(ps, np.broadcast_to(ss, ps.shape))
    return total


def gram_style_loss(pred: dict, style: dict, layers) -> float:
    """Gatys et al.'s style loss: per layer the mean squared Gram difference."""
    total = 0.0
    for layer in layers:
        gp, gs = gram_matrix(pred[layer]), gram_matrix(style[layer])
        total += mse(gp, np.broadcast_to(gs, gp.shape))
    return total


def total_variation(img) -> float:
    """Sum of squared differences between vertical and horizontal neighbours."""
    a = to_np(img)
    total = 0.0
    for y in range(a.shape[-2]):
        for x in range(a.shape[-1]):
            if y + 1 < a.shape[-2]:
                total += float(((a[..., y + 1, x] - a[..., y, x]) ** 2).sum())
            if x + 1 < a.shape[-1]:
                total += float(((a[..., y, x + 1] - a[..., y, x]) ** 2).sum())
    return total


# ---------------------------------------------------------------------------
# style swap (Chen & Schmidt 2016)
# ---------------------------------------------------------------------------


def _swap_grid(content, style, p, s):
    """The content replicate-padded so the last patch reaches the border, and the style patches."""
    c = to_np(content)
    st = to_np(style)[0]
    n, ch, h, w = c.shape
    ho, wo = math.ceil((h - p) / s) + 1, math.ceil((w - p) / s) + 1
    hp, wp = (ho - 1) * s + p, (wo - 1) * s + p
    c = np.pad(c, ((0, 0), (0, 0), (0, hp - h), (0, wp - w)), mode="edge")  # the documented replicate pad
    corners = [(y, x) for y in range(0, st.shape[1] - p + 1, s) for x in range(0, st.shape[2] - p + 1, s)]
    patches = [st[:, y : y + p, x : x + p] for y, x in corners]
    return c, st, (ho, wo), corners, patches


def swap_scores(content, style, p, s, eps=1e-8) -> np.ndarray:
    """``<c, s_j> / max(||s_j||, eps)`` for every content patch c (rows of the
    content's patch grid, replicate-padded) and style patch j: (N, Ho, Wo, K)."""
    c, _, (ho, wo), _, patches = _swap_grid(content, style, p, s)
    stacked = np.stack(patches)  # (K, C, p, p)
    norms = np.maximum(np.sqrt((stacked * stacked).sum(axis=(1, 2, 3))), eps)
    scores = np.zeros((c.shape[0], ho, wo, len(patches)))
    for i in range(c.shape[0]):
        for y in range(ho):
            for x in range(wo):
                cp = c[i, :, y * s : y * s + p, x * s : x * s + p]
                scores[i, y, x] = (stacked * cp).sum(axis=(1, 2, 3)) / norms
    return scores


def swap_argmax(content, style, p, s, eps=1e-8) -> torch.Tensor:
    """For every content patch, the index of the style patch with the highest
    :func:`swap_scores` (the first of equal maxima): (N, Ho, Wo) long."""
    return torch.from_numpy(swap_scores(content, style, p, s, eps).argmax(axis=-1))


def assert_best_patches(index: torch.Tensor, content, style, p, s, eps=1e-8, rel=1e-12) -> None:
    """Every chosen style patch scores the maximum (within ``rel`` of float64
    rounding: true ties may round either way), and where the best patch leads
    the runner-up by more than that, ``index`` names it."""
    scores = swap_scores(content, style, p, s, eps)
    best = scores.max(axis=-1)
    slack = rel * np.maximum(np.abs(best), 1e-300)
    chosen = np.take_along_axis(scores, index.numpy()[..., None], axis=-1)[..., 0]
    assert (chosen >= best - slack).all(), "a chosen patch scores below the best"
    runner_up = np.sort(scores, axis=-1)[..., -2] if scores.shape[-1] > 1 else best - 2 * slack - 1
    clear = best - runner_up > slack
    assert (index.numpy()[clear] == scores.argmax(axis=-1)[clear]).all(), "another patch than the clear best"


def style_swap(content, style, p, s, eps=1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, gradient of ``output.sum()`` with respect to the style), as tensors:
    every content patch replaced by its :func:`swap_argmax` style patch, the
    overlaps averaged, cropped to the content's size."""
    chosen = swap_argmax(content, style, p, s, eps).numpy()
    c, st, (ho, wo), corners, patches = _swap_grid(content, style, p, s)
    n, ch, h, w = to_np(content).shape
    hp, wp = c.shape[-2:]
    out, count = np.zeros((n, ch, hp, wp)), np.zeros((hp, wp))
    for i in range(n):
        for y in range(ho):
            for x in range(wo):
                out[i, :, y * s : y * s + p, x * s : x * s + p] += patches[chosen[i, y, x]]
                if i == 0:
                    count[y * s : y * s + p, x * s : x * s + p] += 1
    result = out[..., :h, :w] / count[:h, :w]
    # each chosen patch element carries 1/count of the output position it lands on
    # (positions cropped away carry nothing)
    grad = np.zeros_like(st)
    for i in range(n):
        for y in range(ho):
            for x in range(wo):
                sy, sx = corners[chosen[i, y, x]]
                for dy in range(p):
                    for dx in range(p):
                        oy, ox = y * s + dy, x * s + dx
                        if oy < h and ox < w:
                            grad[:, sy + dy, sx + dx] += 1.0 / count[oy, ox]
    return torch.from_numpy(result), torch.from_numpy(grad)[None]

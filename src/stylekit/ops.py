"""Small tensor kernels where PyTorch's own are slow for our layouts (docs/performance.md).

* :func:`reflect_pad1`: the 1-pixel reflection padding before every 3x3 conv
  of the encoder and the decoder. ``F.pad(mode="reflect")`` on a
  ``channels_last`` tensor converts it to the contiguous layout, pads, and
  converts the result back: three passes over the tensor, measured at about a
  third of AdaIN's whole time at 512 px with bf16. This writes the padded
  tensor once, in the input's layout, with the same values (bit for bit) and
  the same gradient. Contiguous tensors keep ``F.pad``.
* :func:`mean_std_fast`: :func:`stylekit.functional.mean_std` in two plain
  passes instead of ``torch.var_mean``'s Welford kernel (measured 5x slower on
  a 256 x 128 x 128 map).
* :func:`tune_allocator`: glibc's malloc returns every block over 32 MiB (its
  dynamic threshold's ceiling) to the system when it is freed, so each large
  intermediate tensor is paid for again in page faults on its next allocation
  (measured: a 64 MiB clone 3x slower than a copy into an existing tensor). It
  raises those thresholds to 256 / 512 MiB.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn.functional as F


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor laid out channels_last and not also plain contiguous
    (C == 1 or H == W == 1 tensors are both: those keep the ordinary path)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


_FAST_PAD = contextvars.ContextVar("stylekit_fast_pad", default=True)


@contextlib.contextmanager
def fast_padding(enabled: bool = True):
    """Let :func:`reflect_pad1` write its own padding (the default), or, with
    False, hand every call to ``F.pad`` (what the networks'
    ``SpeedSettings(fast_pad=False)`` measures); thread- and task-local."""
    token = _FAST_PAD.set(bool(enabled))
    try:
        yield
    finally:
        _FAST_PAD.reset(token)


def reflect_pad1(x: torch.Tensor, any_layout: bool = False) -> torch.Tensor:
    """``F.pad(x, (1, 1, 1, 1), mode="reflect")``, in the layout and dtype of ``x``
    (``F.pad`` itself runs in fp32 under CPU autocast). Contiguous tensors keep
    ``F.pad`` unless ``any_layout``; so does everything inside ``fast_padding(False)``."""
    if ((not any_layout and not is_channels_last(x)) or x.dim() != 4 or x.shape[-2] < 2 or x.shape[-1] < 2
            or not _FAST_PAD.get()):
        return F.pad(x, (1, 1, 1, 1), mode="reflect")
    if x.requires_grad and torch.is_grad_enabled():
        return _ReflectPad1.apply(x)
    return _reflect_pad1(x)


def _reflect_pad1(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    layout = torch.channels_last if is_channels_last(x) else torch.contiguous_format
    out = torch.empty((n, c, h + 2, w + 2), dtype=x.dtype, device=x.device, memory_format=layout)
    out[:, :, 1:-1, 1:-1] = x
    return reflect_border_(out)


def reflect_border_(out: torch.Tensor) -> torch.Tensor:
    """Fill the 1-pixel border of ``out`` from its interior, as reflection
    padding does: rows first, then whole columns (corners reflected twice, as
    ``F.pad`` does), for a tensor whose interior was just written."""
    out[:, :, 0, 1:-1] = out[:, :, 2, 1:-1]
    out[:, :, -1, 1:-1] = out[:, :, -3, 1:-1]
    out[:, :, :, 0] = out[:, :, :, 2]
    out[:, :, :, -1] = out[:, :, :, -3]
    return out


class _ReflectPad1(torch.autograd.Function):
    """The padding with a backward pass that folds the border gradients back in
    place. Autograd through the slice assignments above cloned the whole padded
    gradient once per assignment: in decoder training that cost more than the
    convolutions' backward."""

    @staticmethod
    def forward(ctx, x):
        return _reflect_pad1(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        cols = grad[:, :, :, 1:-1].clone()  # columns first, then rows: the padding is separable
        cols[:, :, :, 1] += grad[:, :, :, 0]
        cols[:, :, :, -2] += grad[:, :, :, -1]
        rows = cols[:, :, 1:-1, :].clone()
        rows[:, :, 1, :] += cols[:, :, 0, :]
        rows[:, :, -2, :] += cols[:, :, -1, :]
        return rows


def mean_std_fast(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel mean and ``sqrt(biased var + eps)`` over (H, W) as (N, C, 1, 1) tensors
    (:func:`stylekit.functional.mean_std` without its input check; differentiable),
    computed in two passes (the mean, then
    the mean of the squared deviations: ``torch.var_mean``'s one-pass Welford
    kernel is several times slower on the CPU) and, for a channels_last map,
    over the (N, H*W, C) view whose reductions run along contiguous channels."""
    n, c = x.shape[:2]
    rows = x.permute(0, 2, 3, 1).reshape(n, -1, c) if is_channels_last(x) else x.reshape(n, c, -1).transpose(1, 2)
    mean = rows.mean(dim=1, keepdim=True)
    deviations = rows - mean
    # in place when no gradient needs the deviations (inference): one buffer fewer
    var = (deviations.square() if deviations.requires_grad else deviations.square_()).mean(dim=1)
    return mean.view(n, c, 1, 1), torch.sqrt(var + eps).view(n, c, 1, 1)


def mean_std_one_read(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mean_std_fast` for inference: (N, C, 1, 1) mean and
    ``sqrt(biased var + eps)`` from two reductions of ``x`` and no temporary
    map, with ``var = mean(x^2) - mean^2`` (the sum of squares as a norm),
    accumulated in float32 at least. On a channels_last map of few channels it
    is several times faster than subtracting the mean first. The cancellation
    costs float32 precision of order ``1e-7 * mean^2``, far below ``eps`` for
    activations of order one; not for gradients (a norm's gradient at zero is
    undefined)."""
    n, dtype = x.shape[-2] * x.shape[-1], torch.promote_types(x.dtype, torch.float32)
    mean = x.mean(dim=(2, 3), keepdim=True, dtype=dtype)
    square = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True, dtype=dtype).square_() / n
    return mean, torch.sqrt((square - mean.square()).clamp_min_(0) + eps)


_TUNED = False


def tune_allocator(mmap_threshold: int = 72 * 2**20, trim_threshold: int = 128 * 2**20) -> bool:
    """Keep freed blocks up to ``mmap_threshold`` bytes in glibc's heap for reuse
    instead of unmapping them (and up to ``trim_threshold`` free bytes at the
    heap's top instead of returning them).

    Every intermediate tensor of AdaIN at 512 px (at most 64 MiB) is then
    reused rather than page-faulted afresh; larger ones (big images) are still
    mapped and returned one by one, which keeps the peak of a 2048 px image
    near glibc's default (with a 1 GiB threshold it measured 60 % higher).
    Process-wide and idempotent; returns True when glibc accepted both settings
    (False elsewhere: musl, macOS, Windows). Set
    ``STYLEKIT_NO_ALLOCATOR_TUNING=1`` to leave malloc alone.
    """
    global _TUNED
    if _TUNED:
        return True
    import ctypes
    import ctypes.util
    import os
    import sys

    if os.environ.get("STYLEKIT_NO_ALLOCATOR_TUNING") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    _TUNED = bool(ok)
    return _TUNED


def allocator_tuned() -> bool:
    return _TUNED


# --- inference kernels for the VGG encoder and the mirror decoder (CPU, channels_last) ---

_POINTWISE: bool | None = None  # whether oneDNN's fused conv + post-op is usable (checked once)


def _pointwise_conv(x, weight, bias, padding: int, relu: bool):
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, [padding, padding], [1, 1], [1, 1], 1, "relu" if relu else "none", [], ""
    )


def conv2d_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int = 0,
                relu: bool = True) -> torch.Tensor:
    """``F.conv2d`` followed by an in-place ReLU, as one oneDNN primitive with a
    ReLU post-op where available (the CPU builds of torch; measured bit-identical
    to the two separate ops); otherwise the two ops."""
    global _POINTWISE
    if _POINTWISE is not False and x.device.type == "cpu" and x.dtype == weight.dtype:
        try:
            out = _pointwise_conv(x, weight, bias, padding, relu)
            _POINTWISE = True
            return out.contiguous(memory_format=torch.channels_last)
        except (AttributeError, NotImplementedError):  # no such op in this build
            _POINTWISE = False
        except RuntimeError:  # a shape or layout oneDNN turns down: this call takes the plain ops
            pass
    bias = bias.to(x.dtype) if bias is not None else None
    out = F.conv2d(x, weight, bias, padding=padding).contiguous(memory_format=torch.channels_last)
    return out.relu_() if relu else out


def conv2d_reflect_borders(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           relu: bool = True) -> torch.Tensor:
    """``conv2d_relu(reflect_pad1(x), ...)`` for a 3x3 conv without writing the
    padded copy of ``x``: oneDNN zero-pads inside the convolution, and the one
    ring of border outputs that zeros got wrong is computed again from
    reflection-padded two-pixel strips of ``x``. Used where the padded copy
    costs more than the strips (the decoder's last conv: 64 channels in, 3
    out, at full resolution)."""
    h, w = x.shape[-2:]
    if h < 3 or w < 3:
        return conv2d_relu(reflect_pad1(x, any_layout=True), weight, bias, relu=relu)
    out = conv2d_relu(x, weight, bias, padding=1, relu=relu)
    rows = conv2d_relu(torch.cat([reflect_pad1(x[:, :, :2], any_layout=True),
                                  reflect_pad1(x[:, :, -2:], any_layout=True)]), weight, bias, relu=relu)
    cols = conv2d_relu(torch.cat([reflect_pad1(x[..., :2], any_layout=True),
                                  reflect_pad1(x[..., -2:], any_layout=True)]), weight, bias, relu=relu)
    n = x.shape[0]
    out[:, :, 0] = rows[:n, :, 0]
    out[:, :, -1] = rows[n:, :, -1]
    out[..., 0] = cols[:n, ..., 0]
    out[..., -1] = cols[n:, ..., -1]
    return out


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2, 2, ceil_mode=True)``; a channels_last map of even
    size as two elementwise maxima of strided views (no index tensor: measured
    2-3x faster than torch's kernel, identical values)."""
    n, c, h, w = x.shape
    if not is_channels_last(x) or h % 2 or w % 2:
        return F.max_pool2d(x, 2, 2, ceil_mode=True)
    v = x.permute(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, c)
    rows = torch.maximum(v[:, :, 0], v[:, :, 1])  # (n, h/2, w/2, 2, c)
    return torch.maximum(rows[:, :, :, 0], rows[:, :, :, 1]).permute(0, 3, 1, 2)


def upsample2_reflect_pad1(x: torch.Tensor) -> torch.Tensor:
    """``reflect_pad1(F.interpolate(x, scale_factor=2, mode="nearest"))`` written
    in one pass into the padded tensor (channels_last; other layouts take the
    two ops)."""
    n, c, h, w = x.shape
    if not is_channels_last(x):
        return reflect_pad1(F.interpolate(x, scale_factor=2, mode="nearest"), any_layout=True)
    out = torch.empty((n, c, 2 * h + 2, 2 * w + 2), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    inner = out[:, :, 1:-1, 1:-1].permute(0, 2, 3, 1).unflatten(1, (h, 2)).unflatten(3, (w, 2))  # (n, h, 2, w, 2, c)
    inner.copy_(x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, h, 2, w, 2, c))
    return reflect_border_(out)


_FAST = contextvars.ContextVar("stylekit_fast_inference", default=True)


@contextlib.contextmanager
def fast_inference(enabled: bool = True):
    """Allow (or, with False, forbid) the fused inference path of the encoder
    and the decoder in this context (thread- and task-local)."""
    token = _FAST.set(bool(enabled))
    try:
        yield
    finally:
        _FAST.reset(token)


def use_fast_path(x: torch.Tensor) -> bool:
    """Whether the encoder / decoder take their fused inference path for ``x``:
    allowed here (:func:`fast_inference`), inside ``torch.inference_mode``, on
    the CPU, for a channels_last input. Anything that needs gradients, and every
    contiguous input, runs the plain modules."""
    return (_FAST.get() and torch.is_inference_mode_enabled() and x.device.type == "cpu"
            and is_channels_last(x))


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the convs of a module would run in: autocast's, else the input's."""
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def prepared_weights(cache: dict, name: str, conv, dtype: torch.dtype):
    """``conv``'s weight (channels_last) and bias in ``dtype``, cast once and
    kept in ``cache`` until the parameters change."""
    key = (name, dtype)
    version = (conv.weight._version, conv.weight.data_ptr(), conv.bias._version if conv.bias is not None else None)
    found = cache.get(key)
    if found is None or found[0] != version:
        w = conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
        b = conv.bias.detach().to(dtype) if conv.bias is not None else None
        found = cache[key] = (version, w, b)
    return found[1], found[2]


def folded_weights(cache: dict, pointwise, conv, dtype: torch.dtype):
    """``conv`` after the 1x1 conv ``pointwise`` as one conv (folded in float64:
    exact, since a 1x1 conv commutes with reflection padding); the weight in
    ``dtype`` (channels_last), the bias float32, cached like :func:`prepared_weights`.

    The bias stays float32 (oneDNN adds it to the float32 accumulator): folded,
    it carries the pointwise conv's offset (the encoder's mean subtraction),
    large next to the outputs, and bf16 would shift every output of a channel
    by the same rounding error."""
    key = ("folded", id(pointwise), id(conv), dtype)
    version = tuple((p._version, p.data_ptr()) for p in (pointwise.weight, pointwise.bias, conv.weight, conv.bias))
    found = cache.get(key)
    if found is None or found[0] != version:
        w0, b0 = pointwise.weight.detach().double()[:, :, 0, 0], pointwise.bias.detach().double()
        w1, b1 = conv.weight.detach().double(), conv.bias.detach().double()
        weight = torch.einsum("ojhw,ji->oihw", w1, w0).to(dtype).contiguous(memory_format=torch.channels_last)
        bias = (b1 + torch.einsum("ojhw,j->o", w1, b0)).to(torch.float32)
        found = cache[key] = (version, weight, bias)
    return found[1], found[2]

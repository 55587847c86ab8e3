"""Image optimisation: the loop shared by the optimisation-based methods (Gatys,
style swap's optimisation mode).

The image is optimised through ``image = sigmoid(z)``. Pixels therefore stay
in (0, 1) at every evaluation without clamping: L-BFGS builds its curvature
estimate from the points it evaluated, and clamping the image between steps
would move it off those points and corrupt that history (and the line
search). The price is a smaller gradient for pixels near 0 or 1, so the
initial image is first squeezed into ``[margin, 1 - margin]``.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from .checks import check_choice, check_int, check_number
from .errors import StylekitError

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")

#: Adam's step size in logit space: about 0.01 in pixels at mid-grey.
DEFAULT_ADAM_LR = 0.05

LossFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
#: ``callback(step, image)``: the detached image after ``step`` completed iterations.
Callback = Callable[[int, torch.Tensor], None]


def initial_image(content: torch.Tensor, init: str = "content", seed: int = 0) -> torch.Tensor:
    """The starting image: a copy of ``content``, or uniform noise of its shape
    drawn from a generator seeded with ``seed`` (reproducible, no global RNG)."""
    check_choice(init, "init", INITS)
    if init == "content":
        return content.detach().clone()
    g = torch.Generator().manual_seed(seed)
    return torch.rand(content.shape, generator=g).to(content.device, content.dtype)


def check_options(steps: int, optimizer: str, lr: float | None, init: str = "content") -> None:
    """Validate the optimisation controls (methods call this in their constructors)."""
    check_int(steps, "steps", 1)
    check_choice(init, "init", INITS)
    check_choice(optimizer, "optimizer", OPTIMIZERS)
    if lr is not None:
        check_number(lr, "lr", positive=True)


def check_weight(value, name: str) -> float:
    """A loss weight: a finite number >= 0."""
    return check_number(value, name, 0)


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes this process can still allocate: ``MemAvailable`` of /proc/meminfo
    on a Linux CPU, the free memory of a CUDA device; None where unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(need_bytes: float, device: torch.device | str, what: str) -> None:
    """Refuse, with a one-line :class:`StylekitError`, a job whose estimated peak
    exceeds :func:`available_memory`: an error now instead of the system's
    out-of-memory killer (or swapping) later."""
    available = available_memory(device)
    if available is not None and need_bytes > available:
        raise StylekitError(
            f"{what} needs about {need_bytes / 2**30:.1f} GiB of memory at this size and only "
            f"{available / 2**30:.1f} GiB is available; use a smaller --size (the need grows with the pixel count)"
        )


def optimize_image(
    loss_fn: LossFn,
    init: torch.Tensor,
    *,
    steps: int = 100,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    margin: float = 1e-2,
    history_size: int = 10,
    progress: bool = True,
    desc: str = "optimising",
    callback: Callback | None = None,
    callback_steps: Iterable[int] | None = None,
    bytes_per_pixel: float | None = None,
) -> torch.Tensor:
    """Minimise ``sum(loss_fn(image).values())`` over an image, starting at ``init``.

    ``loss_fn`` maps an ``(N, 3, H, W)`` image in (0, 1) to named, already
    weighted loss terms (scalar tensors); the progress bar shows each term.
    ``optimizer``: ``"lbfgs"`` (strong-Wolfe line search, ``steps``
    iterations, step size ``lr``, default 1, ``history_size`` correction
    pairs) or ``"adam"`` (``steps`` updates, default ``lr`` 0.05 in logit
    space). ``margin`` squeezes the initial image into ``[margin, 1 - margin]``
    so no pixel starts on the flat tails of the sigmoid. Returns the detached
    image.

    ``callback(step, image)`` is called with the detached image after ``step``
    completed iterations, for each step in ``callback_steps`` (integers in
    ``[0, steps]``; default: every step from 0), in increasing order. The
    iterates are the same with or without it. With L-BFGS the loop pauses at
    each such step and resumes with its history intact, which costs one extra
    loss evaluation per pause (none for the last step), so ask only for the
    steps you need.

    ``bytes_per_pixel``: the loss's peak memory per image pixel (one forward
    and backward pass, measured by the calling method); with it, the
    optimiser's own image-sized tensors are added and the run is refused up
    front (:func:`check_memory`) when the estimate exceeds the memory available.
    """
    check_options(steps, optimizer, lr)
    if not isinstance(init, torch.Tensor) or init.dim() != 4 or init.shape[1] != 3 or not init.is_floating_point():
        shape = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise StylekitError(f"init must be a float (N, 3, H, W) image tensor, got {shape}")
    check_int(history_size, "history_size", 1)
    if not isinstance(margin, (int, float)) or not 0 < margin < 0.5:
        raise StylekitError(f"margin must be in (0, 0.5), got {margin!r}")
    pauses = _callback_steps(callback, callback_steps, steps)
    if bytes_per_pixel is not None:
        # float32 image-sized tensors of the optimiser: L-BFGS two per correction pair, Adam two moments
        own = 4 * 3 * (2 * history_size + 4 if optimizer == "lbfgs" else 6)
        pixels = init.shape[0] * init.shape[-2] * init.shape[-1]
        check_memory(pixels * (bytes_per_pixel + own), init.device, desc)
    from tqdm import tqdm

    x = init.detach().float().clamp(0, 1) * (1 - 2 * margin) + margin
    # contiguous: an image decoded from HWC pixels is a permuted view, and
    # L-BFGS flattens the gradient (which takes the parameter's strides) with view()
    z = torch.logit(x).contiguous().requires_grad_()
    if optimizer == "lbfgs":
        # One step() call runs all iterations, so L-BFGS keeps its history and
        # never evaluates a point twice (a callback's pauses aside, see below). The line search usually accepts the
        # first trial point (one evaluation per iteration) but needs several on
        # the first iteration: max_eval only guards against a runaway search.
        # tolerance_change=0 stops early only on a vanishing gradient. The
        # history holds two image-sized tensors per correction pair: 10 pairs
        # (scipy's default) take 250 MB at 1024 x 1024, torch's default 100 would
        # take 2.5 GB.
        max_eval = 2 * steps + 25
        opt = torch.optim.LBFGS(
            [z], lr=1.0 if lr is None else lr, max_iter=steps, max_eval=max_eval,
            tolerance_change=0.0, history_size=history_size, line_search_fn="strong_wolfe",
        )
    else:
        opt = torch.optim.Adam([z], lr=DEFAULT_ADAM_LR if lr is None else lr)
    bar = tqdm(total=steps, desc=desc, disable=not progress, dynamic_ncols=True, leave=False)

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = loss_fn(torch.sigmoid(z))
        total = sum(terms.values())
        if not bool(torch.isfinite(total)):
            raise StylekitError(f"the loss became {float(total.detach())}; lower the loss weights or the learning rate")
        total.backward()
        if optimizer == "lbfgs":
            bar.n = min(steps, opt.state[z].get("n_iter", 0))
        else:
            bar.n += 1
        bar.set_postfix({name: f"{float(v.detach()):.4g}" for name, v in terms.items()}, refresh=False)
        bar.refresh()
        return total

    def report(step: int) -> None:
        if step in pauses:
            callback(step, torch.sigmoid(z).detach())

    try:
        with torch.enable_grad():
            report(0)
            if optimizer == "lbfgs":
                # Each step() call first evaluates the current point, then runs
                # max_iter iterations; its state (history, step length, counters)
                # carries over. The evaluation budget is what one call over all
                # steps would have left, so the line searches match it too.
                group, done, calls = opt.param_groups[0], 0, 0
                for stop in [*(s for s in sorted(pauses) if 0 < s < steps), steps]:
                    budget = max_eval - (opt.state[z].get("func_evals", 0) - calls)
                    if budget > 1:  # else one call would have stopped here: out of evaluations
                        group["max_iter"], group["max_eval"] = stop - done, budget
                        opt.step(closure)
                        calls += 1
                    done = stop
                    report(stop)
            else:
                for i in range(steps):
                    opt.step(closure)
                    report(i + 1)
    finally:
        bar.close()
    return torch.sigmoid(z).detach()


def _callback_steps(callback, callback_steps, steps: int) -> frozenset[int]:
    """The steps at which to call ``callback`` (empty without one), checked."""
    if callback is None:
        if callback_steps is not None:
            raise StylekitError("callback_steps needs a callback")
        return frozenset()
    if not callable(callback):
        raise StylekitError(f"callback must be callable, got {type(callback).__name__}")
    if callback_steps is None:
        return frozenset(range(steps + 1))
    chosen = set()
    for s in callback_steps:
        chosen.add(check_int(s, "a callback step", 0, steps))
    return frozenset(chosen)

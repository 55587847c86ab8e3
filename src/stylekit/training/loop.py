"""The training loop every trainer shares: checkpoints, resume, logs, samples.

A trainer supplies a *task* (see :class:`TrainTask`): its models, optimiser and
data sampler behind ``state_dict``/``load_state_dict``, and one ``train_step``.
This module does the rest:

* checkpoints written atomically (temp file + rename) every N steps and/or
  every M minutes, holding the task state, step, RNG states, the frozen config
  and the loss-log accumulators - so ``--resume`` continues bit for bit and a
  killed run loses at most one interval;
* ``weights.safetensors`` refreshed with every checkpoint (what we ship);
* ``log.csv`` (losses averaged over each logging interval, lr, steps/s), with
  its header from the first step and a row for the last, shorter interval when
  a run stops between two logging steps; truncated on resume to the rows the
  checkpoint's accumulators do not cover, so it reads like one run;
* sample grids every ``sample_every`` steps and at the last step, a tqdm
  progress bar, and a clean checkpoint on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import signal
import sys
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from .. import distributed
from ..errors import StylekitError
from ..files import atomic_write, safe_torch_load

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.safetensors"
LOG = "log.csv"
FORMAT_VERSION = 1


class TrainTask(Protocol):
    kind: str

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def train_step(self, step: int) -> dict[str, float]: ...

    def learning_rate(self) -> float: ...

    def write_samples(self, path: Path) -> None: ...

    def export_weights(self, path: Path) -> None: ...

    # optional: ``start_fresh()`` runs only when a run starts without a checkpoint


@dataclass(frozen=True)
class LoopConfig:
    max_steps: int
    save_every_steps: int = 0  # 0: by time only
    save_every_minutes: float = 5.0  # 0: by steps only
    log_every: int = 10
    sample_every: int = 500  # 0: no samples
    progress: bool = True


def inverse_decay(base_lr: float, decay: float, step: int) -> float:
    """The official AdaIN schedule: ``lr / (1 + decay * step)``."""
    return base_lr / (1.0 + decay * step)


# Tasks draw their data from their own checkpointed generators; the global
# torch RNG is saved too, for layers (dropout, noise) that use it.
def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict:
    try:
        payload = safe_torch_load(path)
    except StylekitError as exc:
        raise StylekitError(f"cannot read checkpoint {path} (truncated or corrupt?): {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise StylekitError(f"{path} is not a stylekit checkpoint")
    return payload


def saved_settings(run_dir: str | Path, kind: str) -> tuple[dict, int] | None:
    """The settings a run was trained with and the step it reached, from its
    checkpoint (None if the directory holds none)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    payload = load_checkpoint(path)
    if payload.get("kind") != kind:
        raise StylekitError(f"{path} is a {payload.get('kind')} checkpoint, not {kind}")
    return dict(payload["config"]), int(payload["step"])


# Config fields a resumed run may change: how long, how often and on what hardware
# (a CPU run may continue on a GPU), not what is trained.
RESUMABLE_CHANGES = {
    "max_steps", "save_every_steps", "save_every_minutes", "log_every", "sample_every", "progress",
    "device", "precision", "encoder_weights", "init_weights",
}


def config_defaults(config_cls) -> dict:
    """The default of every field of a config dataclass that has one."""
    out = {}
    for f in fields(config_cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _check_same_config(saved: dict, current: dict, path: Path, defaults: dict | None = None) -> None:
    # A checkpoint written before a setting existed was trained with that setting's default.
    saved = {**(defaults or {}), **saved}
    changed = sorted(k for k in set(saved) | set(current) if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed[:4])
        raise StylekitError(f"--resume with a different configuration than {path} was trained with ({detail})")


class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop after this step."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second signal: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_training(task: TrainTask, config: dict, run_dir: str | Path, loop: LoopConfig, resume: bool = False,
                 defaults: dict | None = None) -> dict:
    """Train ``task`` until ``loop.max_steps``; returns a summary dict.

    ``defaults``: the config's field defaults; a resumed checkpoint that lacks a
    setting (saved before it existed) counts as trained with its default.

    Under torchrun every process runs this loop in lockstep; only rank 0 writes
    (checkpoints, weights, log, samples, progress), every rank reads the
    checkpoint on resume.
    """
    ctx = getattr(task, "ctx", None) or distributed.Context()
    device = getattr(task, "device", torch.device("cpu"))
    main = ctx.is_main
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT
    log_path = run_dir / LOG
    full_config = {**config, **asdict(loop)}
    if main:
        _remove_stale_temps(run_dir)

    step, elapsed, acc_sum, acc_count = 0, 0.0, {}, 0
    if ckpt_path.exists():
        if not resume:
            raise StylekitError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        payload = load_checkpoint(ckpt_path)
        if payload.get("kind") != task.kind:
            raise StylekitError(f"{ckpt_path} is a {payload.get('kind')} checkpoint, not {task.kind}")
        _check_same_config(payload["config"], full_config, ckpt_path, {**config_defaults(LoopConfig), **(defaults or {})})
        task.load_state_dict(payload["task"])
        _set_rng_state(payload["rng"])
        step, elapsed = int(payload["step"]), float(payload["elapsed"])
        acc_sum, acc_count = dict(payload["log_acc"]["sum"]), int(payload["log_acc"]["count"])
        if main:
            # a last row over a shorter interval covers steps the restored accumulators still hold
            _truncate_log(log_path, step - acc_count)
    else:
        if resume:
            print(f"note: no checkpoint in {run_dir}; starting a new run", file=sys.stderr)
        getattr(task, "start_fresh", lambda: None)()  # e.g. fine-tuning from given weights

    if main:
        _write_run_info(run_dir, full_config, step)
    distributed.barrier(ctx)  # nobody trains (and rank 0 writes nothing) until every rank has read the checkpoint
    if step >= loop.max_steps:
        return {"step": step, "elapsed": elapsed, "run_dir": str(run_dir)}

    def checkpoint():
        save_checkpoint(
            ckpt_path,
            {
                "format": FORMAT_VERSION,
                "kind": task.kind,
                "step": step,
                "elapsed": elapsed,
                "config": full_config,
                "task": task.state_dict(),
                "rng": _rng_state(),
                "log_acc": {"sum": acc_sum, "count": acc_count},
            },
        )
        task.export_weights(run_dir / WEIGHTS)

    log_file = open(log_path, "a", newline="") if main else None
    writer = None
    last_save = time.monotonic()
    interval_start, interval_steps = time.monotonic(), 0
    bar = tqdm(total=loop.max_steps, initial=step, disable=not (loop.progress and main), unit="step", dynamic_ncols=True, desc=task.kind)
    try:
        with _StopFlag() as stop:
            while step < loop.max_steps:
                t0 = time.monotonic()
                losses = task.train_step(step)
                step += 1
                elapsed += time.monotonic() - t0
                interval_steps += 1
                for k, v in losses.items():
                    acc_sum[k] = acc_sum.get(k, 0.0) + float(v)
                acc_count += 1
                stopping = distributed.any_rank(stop.requested, ctx, device)
                last = stopping or step == loop.max_steps
                if main and writer is None:
                    header = _log_header(log_path)  # appending to a resumed log: keep its column order
                    columns = ["step", "elapsed_s", "lr", *acc_sum, "steps_per_s"]
                    writer = csv.DictWriter(log_file, fieldnames=header or columns)
                    if not header:
                        writer.writeheader()
                        log_file.flush()
                if main and (step % loop.log_every == 0 or last):
                    now = time.monotonic()
                    rate = interval_steps / max(now - interval_start, 1e-9)
                    row = {"step": step, "elapsed_s": round(elapsed, 2), "lr": task.learning_rate()}
                    row.update({k: v / acc_count for k, v in acc_sum.items()})
                    row["steps_per_s"] = round(rate, 4)
                    writer.writerow(row)
                    log_file.flush()
                    bar.set_postfix({k: f"{v / acc_count:.3g}" for k, v in acc_sum.items()} | {"it/s": f"{rate:.2f}"})
                    if step % loop.log_every == 0:  # a shorter last interval stays in the accumulators (and checkpoint)
                        acc_sum, acc_count = {}, 0
                        interval_start, interval_steps = now, 0
                bar.update(1)
                if loop.sample_every and (step % loop.sample_every == 0 or last) and main:
                    task.write_samples(run_dir / "samples" / f"step_{step:07d}.png")
                due_by_steps = loop.save_every_steps and step % loop.save_every_steps == 0
                due_by_time = loop.save_every_minutes and time.monotonic() - last_save >= 60 * loop.save_every_minutes
                if main and (due_by_steps or due_by_time or step == loop.max_steps or stopping):
                    checkpoint()
                    last_save = time.monotonic()
                if stopping:
                    if main:
                        print(f"\nstopped at step {step}; checkpoint saved, continue with --resume", file=sys.stderr)
                    break
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()
    distributed.barrier(ctx)
    return {"step": step, "elapsed": elapsed, "run_dir": str(run_dir)}


def _remove_stale_temps(run_dir: Path) -> None:
    """Temp files of atomic writes whose process was killed mid-write (kill -9,
    power loss): never renamed, so never read; removed when the run starts again."""
    patterns = [f".{name}.*.tmp" for name in (CHECKPOINT, WEIGHTS, LOG, "run.json")]
    for folder, pattern in [(run_dir, p) for p in patterns] + [(run_dir / "samples", ".step_*.tmp")]:
        for stale in folder.glob(pattern):
            stale.unlink(missing_ok=True)


def _log_header(log_path: Path) -> list[str] | None:
    if not log_path.exists() or log_path.stat().st_size == 0:
        return None
    with open(log_path, newline="") as fh:
        return next(csv.reader(fh), None)


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint we resume from."""
    if not log_path.exists():
        return
    with open(log_path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [r for r in body if r and int(r[0]) <= step]

    def write(tmp: Path):
        with open(tmp, "w", newline="") as out:
            w = csv.writer(out)
            w.writerow(header)
            w.writerows(kept)

    atomic_write(log_path, write)


def _write_run_info(run_dir: Path, config: dict, step: int) -> None:
    """run.json: the config and one entry per session that trained this run."""
    path = run_dir / "run.json"
    sessions = json.loads(path.read_text()).get("sessions", []) if path.exists() else []
    sessions.append({
        "command": " ".join(sys.argv),
        "from_step": step,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    info = {"config": config, "sessions": sessions}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(info, indent=2, default=str)))

"""Where CUDA is available: AdaIN frames per second at 512 px with mixed
precision (the paper: 15 FPS on a Titan X) and decoder-training steps per
second. Runs on any device (the tests use the CPU)."""

from __future__ import annotations

import torch

from stylekit.adain.model import AdaINStylizer
from stylekit.bench import synthetic_image
from stylekit.devices import autocast, resolve_precision
from stylekit.encoder import style_layers_for
from stylekit.functional import adain
from stylekit.losses import content_loss, mean_std_style_loss
from stylekit.timing import timed_runs

from .common import models

#: the AdaIN paper's frames per second at 512 px on a Titan X
PAPER_FPS = 15.0


def inference(encoder, decoder, device, size: int, frames: int, say) -> dict:
    """AdaIN frames per second at ``size``, with ``auto`` precision and in fp32."""
    content = synthetic_image(size, 1)[None].to(device)
    style = synthetic_image(size, 2)[None].to(device)
    out = {}
    for precision in ("auto", "fp32"):
        model = AdaINStylizer(encoder, decoder, device, precision=precision, cache_size=0)
        prepared = model.prepare_style(style)
        without = timed_runs(lambda: model.transfer_prepared(content, [prepared]), frames, 3, device)
        with_enc = timed_runs(lambda: model.transfer(content, [style]), frames, 3, device)
        name = str(model.dtype).replace("torch.", "")
        out[name] = {
            "fps_without_style_encoding": frames / sum(without["runs"]),
            "fps_with_style_encoding": frames / sum(with_enc["runs"]),
            "median_s": without["median"], "median_with_style_encoding_s": with_enc["median"],
        }
        say(f"  AdaIN {size}px on {device} ({name}): {out[name]['fps_with_style_encoding']:.1f} FPS with "
            f"style encoding, {out[name]['fps_without_style_encoding']:.1f} without (paper: {PAPER_FPS:.0f})")
    return out


def training(encoder, decoder, device, train_size: int, batch: int, train_steps: int) -> dict:
    """Decoder-training steps per second: the AdaIN trainer's loss on random
    crops, Adam, autocast (with a GradScaler for fp16)."""
    dtype = resolve_precision(device, "auto")
    layers = style_layers_for(decoder.from_layer)
    net = type(decoder)(decoder.from_layer).to(device)
    net.load_state_dict(decoder.state_dict())
    net.to(memory_format=torch.channels_last).train()
    encoder = encoder.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16 and device.type == "cuda")
    g = torch.Generator().manual_seed(0)

    def crops():
        return torch.rand(batch, 3, train_size, train_size, generator=g).to(device).contiguous(
            memory_format=torch.channels_last)

    batches = [(crops(), crops()) for _ in range(2)]
    state = {"i": 0}

    def step():
        c, s = batches[state["i"] % 2]
        state["i"] += 1
        with autocast(device, dtype):
            with torch.no_grad():
                cf = encoder.encode(c, decoder.from_layer).float()
                sfs = {k: v.float() for k, v in encoder(s, layers).items()}
                target = adain(cf, sfs[decoder.from_layer])
            output = net(target)
            of = encoder(output, layers)
            loss = content_loss(of[decoder.from_layer], target) + 10.0 * mean_std_style_loss(of, sfs, layers)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    run = timed_runs(step, train_steps, 3, device)
    return {"batch": batch, "crop": train_size, "dtype": str(dtype).replace("torch.", ""),
            "steps_per_s": train_steps / sum(run["runs"]), "median_step_s": run["median"]}


def gpu_section(device="cuda", *, size: int = 512, frames: int = 50, train_size: int = 256, batch: int = 8,
                train_steps: int = 20, adain_weights=None, encoder_weights=None, say=print) -> dict:
    """AdaIN frames per second at ``size`` and decoder-training steps per second
    (batch of ``batch`` ``train_size`` crops, the paper's setting; synthetic data)."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return {"available": False, "reason": "CUDA is not available"}
        torch.backends.cudnn.benchmark = True
    out = {"available": True, "device": str(device), "size": size, "paper_fps": PAPER_FPS}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    encoder, decoder = models(adain_weights, encoder_weights)
    out["inference"] = inference(encoder, decoder, device, size, frames, say)
    out["training"] = training(encoder, decoder, device, train_size, batch, train_steps)
    t = out["training"]
    say(f"  training on {device}: {t['steps_per_s']:.2f} steps/s (batch {batch} x {train_size}px, {t['dtype']})")
    return out

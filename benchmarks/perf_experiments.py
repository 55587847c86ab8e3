"""Fusions tried on the bf16 CPU path of AdaIN at 512 px, and what each measured.

    python benchmarks/perf_experiments.py [--repeats 30] [--markdown FILE]

docs/performance.md explains why the default bf16 path stays at about 2x the
roofline floor: the convolutions alone, at their own shapes, cost 1.2-1.3x
the floor, which leaves too little for the memory-bound passes around them
(reflection padding, pooling, upsampling, the AdaIN step). This script
measures the alternatives to those passes that PyTorch offers, each against
the plain way, on tensors of the shapes AdaIN has at 512 x 512; the last
column says which of the two the fused path runs. A change is worth making
only where the "alternative" column is smaller.

The torch.compile row compiles for about half a minute. Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from stylekit import ops

BF16, CL = torch.bfloat16, torch.channels_last


def best_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def conv(x, w, b, padding=0, relu=True):
    return ops._pointwise_conv(x, w, b, padding, relu)


def pool_into_padded(x):
    """max_pool2 writing its maxima straight into the next conv's padded input."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h // 2 + 2, w // 2 + 2), dtype=x.dtype, memory_format=CL)
    v = x.permute(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, c)
    rows = torch.maximum(v[:, :, 0], v[:, :, 1])
    torch.maximum(rows[:, :, :, 0], rows[:, :, :, 1], out=out[:, :, 1:-1, 1:-1].permute(0, 2, 3, 1))
    return ops.reflect_border_(out)


def input_into_padded(x):
    """The fp32 NCHW image converted to bf16 channels_last inside the padded tensor."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h + 2, w + 2), dtype=BF16, memory_format=CL)
    out[:, :, 1:-1, 1:-1] = x
    return ops.reflect_border_(out)


def conv3x3_as_gemm(x, w, b):
    """A valid 3x3 conv with few outputs (the decoder's last, 64 -> 3) as one GEMM to 9 x Cout planes (one per
    tap), summed over the 9 shifts in fp32: oneDNN's direct kernels run such narrow convs far below peak."""
    n, c, hp, wp = x.shape
    cout, h, wd = w.shape[0], hp - 2, wp - 2
    taps = w.permute(2, 3, 0, 1).reshape(9 * cout, c)
    planes = torch.mm(taps, x.permute(0, 2, 3, 1).reshape(-1, c).t()).view(3, 3, cout, hp, wp)
    out = planes[0, 0, :, :h, :wd].float() + b.float().view(cout, 1, 1)
    for ky in range(3):
        for kx in range(3):
            if ky or kx:
                out += planes[ky, kx, :, ky:ky + h, kx:kx + wd]
    return out[None]


def rand(*shape, scale=1.0):
    t = (torch.randn(*shape) * scale).to(BF16)
    return t.contiguous(memory_format=CL) if t.dim() == 4 else t


def experiments(repeats: int) -> list[tuple[str, str, float, str, float, bool]]:
    """(what, the plain way, its ms, alternative, its ms, whether the fast path takes the alternative)."""
    rows = []
    torch.manual_seed(0)
    with torch.inference_mode():
        for cin, cout, size in ((64, 64, 512), (128, 128, 256), (256, 128, 128), (64, 3, 512)):
            x, w, b = rand(1, cin, size, size), rand(cout, cin, 3, 3, scale=0.05), rand(cout)
            rows.append((f"conv {cin}->{cout} at {size}: reflection padding",
                         "reflect_pad1 + valid conv", best_ms(lambda: conv(ops.reflect_pad1(x), w, b), repeats),
                         "zero-padded conv + border ring recomputed (`ops.conv2d_reflect_borders`)",
                         best_ms(lambda: ops.conv2d_reflect_borders(x, w, b), repeats), cout == 3))
        image = torch.rand(1, 3, 512, 512)
        w0, b0 = rand(3, 3, 1, 1), rand(3)
        w1, b1 = rand(64, 3, 3, 3, scale=0.2), rand(64)
        b1f = b1.float()

        def plain_first():  # preprocess, pad, conv1_1, then the padded copy conv1_2 reads
            h = conv(image.to(BF16).contiguous(memory_format=CL), w0, b0, relu=False)
            return ops.reflect_pad1(conv(ops.reflect_pad1(h), w1, b1))

        def ringed_first():  # folded conv1_1 on the image padded by 2, its border ring refilled
            padded = torch.nn.functional.pad(image, (2, 2, 2, 2), mode="reflect").to(BF16).contiguous(memory_format=CL)
            return ops.reflect_border_(conv(padded, w1, b1f))

        rows.append(("encoder front at 512: preprocess, conv1_1, conv1_2's padded input", "three passes and a 64-channel pad",
                     best_ms(plain_first, repeats),
                     "preprocess folded into conv1_1, run on a 2-pixel pad: it writes conv1_2's padded input",
                     best_ms(ringed_first, repeats), True))
        for cin, cout, size in ((64, 128, 256), (64, 64, 512)):
            x, w, b = rand(1, cin, size, size), rand(cout, cin, 3, 3, scale=0.05), rand(cout)
            # both inputs padded beforehand (a 2-pixel pad costs what a 1-pixel one does): timed is
            # the conv and what it takes to get the next conv's padded input
            narrow, wide = ops.reflect_pad1(x), ops.reflect_pad1(ops.reflect_pad1(x))
            rows.append((f"conv {cin}->{cout} at {size}, then the next conv's pad", "valid conv + reflect_pad1",
                         best_ms(lambda: ops.reflect_pad1(conv(narrow, w, b)), repeats),
                         "the conv on a 2-pixel pad, writing the next padded input (a wider output)",
                         best_ms(lambda: ops.reflect_border_(conv(wide, w, b)), repeats), False))
        x = rand(1, 64, 512, 512)
        rows.append(("max-pool 64 ch at 512, then pad", "max_pool2 + reflect_pad1",
                     best_ms(lambda: ops.reflect_pad1(ops.max_pool2(x)), repeats),
                     "maxima written into the padded tensor (out=)", best_ms(lambda: pool_into_padded(x), repeats), False))
        rows.append(("input image to bf16, channels_last, padded", "convert, then reflect_pad1",
                     best_ms(lambda: ops.reflect_pad1(image.to(BF16).contiguous(memory_format=CL)), repeats),
                     "converted inside the padded tensor", best_ms(lambda: input_into_padded(image), repeats), False))
        feat = rand(1, 256, 128, 128)
        rows.append(("AdaIN statistics of bf16 relu3_1 features", "x.float(), then fp32 statistics",
                     best_ms(lambda: ops.mean_std_fast(feat.float()), repeats),
                     "fp32 accumulation straight from bf16", best_ms(lambda: _stats_from_bf16(feat), repeats), False))
        f32 = feat.float()
        mean, std = ops.mean_std_fast(f32)
        rows.append(("AdaIN affine map into the decoder's bf16 input", "fp32 addcmul, then .to(bf16)",
                     best_ms(lambda: torch.addcmul(mean, f32, std).to(BF16), repeats),
                     "addcmul(bf16 map, fp32 scale) with a bf16 out=",
                     best_ms(lambda: torch.addcmul(mean, feat, std, out=torch.empty_like(feat)), repeats), False))
        x = ops.reflect_pad1(rand(1, 64, 512, 512))
        w3, b3 = rand(3, 64, 3, 3), rand(3)
        w16, b16 = rand(16, 64, 3, 3), rand(16)
        rows.append(("decoder's last conv 64->3 at 512", "3 output channels", best_ms(lambda: conv(x, w3, b3, relu=False), repeats),
                     "padded to 16 output channels (AMX-friendly)", best_ms(lambda: conv(x, w16, b16, relu=False), repeats),
                     False))
        rows.append(("decoder's last conv 64->3 at 512", "3 output channels", best_ms(lambda: conv(x, w3, b3, relu=False), repeats),
                     "one GEMM to 27 planes (3 outputs x 9 taps), 9 shifted fp32 adds (`conv3x3_as_gemm`)",
                     best_ms(lambda: conv3x3_as_gemm(x, w3, b3), repeats), False))
    compiled = _compile_row(repeats)
    if compiled:
        rows.append(compiled)
    return rows


def _stats_from_bf16(x):
    n, c = x.shape[:2]
    rows = x.permute(0, 2, 3, 1).reshape(n, -1, c)
    mean = rows.mean(dim=1, keepdim=True, dtype=torch.float32)
    var = (rows - mean).square_().mean(dim=1)
    return mean, torch.sqrt(var + 1e-5)


def _compile_row(repeats: int):
    import torch._inductor.config as inductor

    from stylekit.adain.model import AdaINStylizer

    inductor.freezing = True
    model = AdaINStylizer.load()
    content = torch.rand(1, 3, 512, 512)
    prepared = model.prepare_style(torch.rand(1, 3, 512, 512))
    model.clear_cache()
    eager = best_ms(lambda: (model.clear_cache(), model.transfer_prepared(content, [prepared])),
                    max(5, repeats // 3))
    encoder, decoder = model.encoder, model.decoder

    def network(x, scale, shift):
        return decoder(torch.addcmul(shift, encoder.encode(x, "relu3_1").float(), scale)).float()

    x = content.contiguous(memory_format=CL)
    scale, shift = torch.rand(1, 256, 1, 1), torch.rand(1, 256, 1, 1)
    with torch.no_grad(), ops.fast_inference(False), torch.autocast("cpu", BF16):
        compiled = torch.compile(network)
        start = time.perf_counter()
        compiled(x, scale, shift)
        compile_s = time.perf_counter() - start
        ms = best_ms(lambda: compiled(x, scale, shift), max(5, repeats // 3))
    return ("whole AdaIN at 512 (style prepared)", "the fused eager path (default)", eager,
            f"torch.compile, inductor with freezing ({compile_s:.0f} s to compile)", ms, False)


def markdown(rows) -> str:
    lines = ["| pass | plain way | ms | alternative | ms | the fast path takes |",
             "| --- | --- | ---: | --- | ---: | --- |"]
    for what, now, now_ms, alt, alt_ms, taken in rows:
        alt_text = f"{alt_ms:.2f}" if alt_ms else "-"
        lines.append(f"| {what} | {now} | {now_ms:.2f} | {alt} | {alt_text} | {'the alternative' if taken else 'the plain way'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    ops.tune_allocator()
    table = markdown(experiments(args.repeats))
    header = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.repeats} "
              "(whole-network rows: of a third as many)\n\n")
    print(header + table)
    if args.markdown:
        tmp = args.markdown.with_suffix(args.markdown.suffix + ".tmp")
        tmp.write_text(header + table)
        tmp.replace(args.markdown)


if __name__ == "__main__":
    main()

"""Would fp16 storage of the shipped VGG-19 encoder cost quality? The evidence
behind ``src/stylekit/data/NOTICE.md``.

    python benchmarks/encoder_precision.py [--data ../shared/data] [--pairs 12] [--size 512] [--precision auto fp32]

The shipped AdaIN decoder stylizes dev_eval pair i (content i, style 3i, in
name order, as ``tools/ship_model.py`` does) once with the float32 encoder
and once with its weights rounded to fp16. Prints, per arithmetic precision of
the stylizer, the mean and max |difference| of the outputs (0-255) and the
largest relative change of the style and content losses, scored with the
float32 encoder. stylekit's rule for fp16 storage: mean < 0.5/255 and style
loss change < 0.5 %.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stylekit.adain.model import AdaINStylizer
from stylekit.decoder import load_decoder
from stylekit.encoder import VGGEncoder, canonical_state_dict
from stylekit.files import load_state_file
from stylekit.evaluate import score
from stylekit.images import expand_inputs
from stylekit.pipeline import fit, to_tensor_image
from stylekit.weights import ENCODER, resolve


def compare(precision: str, encoders: dict, decoder, contents, styles, pairs: int, size: int) -> dict:
    models = {k: AdaINStylizer(e, decoder, "cpu", precision=precision, cache_size=0) for k, e in encoders.items()}
    worst = total = count = 0.0
    style_change, content_change = [], []
    for i in range(pairs):
        c = fit(to_tensor_image(contents[i % len(contents)], "content")[0], size, False)
        s = fit(to_tensor_image(styles[(3 * i) % len(styles)], "style")[0], size, False)
        a, b = (models[k].stylize(c, s, size=0, style_size=0) for k in ("fp32", "fp16"))
        diff = (a - b).abs() * 255
        worst, total, count = max(worst, float(diff.max())), total + float(diff.sum()), count + diff.numel()
        la, lb = score(encoders["fp32"], a, c, s), score(encoders["fp32"], b, c, s)
        style_change.append(abs(lb["style"] - la["style"]) / la["style"])
        content_change.append(abs(lb["content"] - la["content"]) / la["content"])
    return {"mean_abs_255": total / count, "max_abs_255": worst,
            "max_style_change": max(style_change), "max_content_change": max(content_change)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("STYLEKIT_DATA", "../shared/data")))
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", nargs="+", default=["auto", "fp32"], help="the stylizer's arithmetic")
    args = parser.parse_args()
    state = canonical_state_dict(load_state_file(resolve(ENCODER.name)))
    encoders = {"fp32": VGGEncoder(state), "fp16": VGGEncoder({k: v.half().float() for k, v in state.items()})}
    decoder = load_decoder(resolve("adain-decoder-relu3_1"))
    contents = expand_inputs([args.data / "dev_eval" / "content"], "content")
    styles = expand_inputs([args.data / "dev_eval" / "style"], "style")
    print("| arithmetic | mean \\|d\\| /255 | max /255 | style loss change (max) | content loss change (max) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for precision in args.precision:
        r = compare(precision, encoders, decoder, contents, styles, args.pairs, args.size)
        print(f"| {precision} | {r['mean_abs_255']:.3f} | {r['max_abs_255']:.2f} | {r['max_style_change']:.2%} | "
              f"{r['max_content_change']:.2%} |")


if __name__ == "__main__":
    main()

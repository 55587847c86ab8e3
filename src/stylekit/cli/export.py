"""``stylekit export onnx``: a method's networks for ONNX Runtime; the work is
:mod:`stylekit.onnx_backend` and :mod:`stylekit.fast.onnx`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(commands) -> None:
    commands.add_parser("export", help="export a model to another format",
                        description="Export models for other runtimes. See docs/performance.md.", build=export_args)


def export_args(p: argparse.ArgumentParser) -> None:
    from ..onnx_backend import OPSET

    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    o = formats.add_parser("onnx", help="a method's networks as ONNX models (needs the [onnx] extra)",
                           description="adain: DIR/encoder.onnx (image -> features), DIR/decoder.onnx (features -> "
                                       "image), both with dynamic height and width, the covariance transform between "
                                       "them (DIR/transform.safetensors) and DIR/stylekit_onnx.json; run "
                                       "them with stylekit.onnx_backend.OnnxAdaINStylizer(DIR). fast: DIR/style.onnx "
                                       "(style image -> style vector and mean colour), DIR/fast.onnx (content, style "
                                       "vector, mean colour, alpha -> image), and DIR/stylekit_fast_onnx.json.")
    o.add_argument("--method", choices=["adain", "fast"], default="adain", help="the method to export (default: adain)")
    o.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    o.add_argument("--weights", metavar="FILE", help="the method's trained network (default: the shipped one)")
    o.add_argument("--encoder-weights", metavar="FILE", help="VGG-19 weights")
    o.add_argument("--transform", metavar="FILE",
                   help="adain: a trained covariance transform to ship with the export; 'none': plain AdaIN "
                        "(default: the shipped transform with the shipped decoder, none with --weights)")
    o.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default: {OPSET})")
    o.set_defaults(func=cmd_export_onnx)


def cmd_export_onnx(args) -> int:
    if args.method == "fast":
        from ..errors import StylekitError
        from ..fast.onnx import export_fast_onnx

        if args.transform is not None:
            raise StylekitError("--transform applies only to --method adain")
        manifest = export_fast_onnx(args.out, weights=args.weights, encoder_weights=args.encoder_weights,
                                    opset=args.opset)
        print(f"wrote {Path(manifest['dir']) / manifest['style']} and {Path(manifest['dir']) / manifest['network']} "
              f"(the fast network, opset {manifest['opset']}, dynamic height and width)")
        return 0
    from ..onnx_backend import export_adain_onnx

    manifest = export_adain_onnx(args.out, weights=args.weights, encoder_weights=args.encoder_weights,
                                 opset=args.opset, transform_weights=args.transform)
    step = "the learned covariance transform" if manifest["transform"] else "plain AdaIN"
    print(f"wrote {Path(manifest['dir']) / manifest['encoder']} and {Path(manifest['dir']) / manifest['decoder']} "
          f"({step} at {manifest['layer']}, opset {manifest['opset']}, dynamic height and width)")
    return 0

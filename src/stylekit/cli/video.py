"""``stylekit video``: a video stylized frame by frame, temporally smoothed;
the work is :mod:`stylekit.video` and :mod:`stylekit.temporal`."""

from __future__ import annotations

from ..errors import StylekitError
from .flags import (METHODS, add_alpha, add_model_flags, add_no_progress, add_preserve_color, add_sizes,
                    add_style_weights, add_transform, builtin_styles)


def add_commands(commands) -> None:
    p = commands.add_parser("video", help="stylize a video frame by frame",
                            description="Stylize every frame of a video (same fps, no audio), temporally smoothed unless "
                                        "--no-smooth; prints the flicker and frame-difference measures.")
    p.add_argument("input", help="input video (anything ffmpeg reads)")
    p.add_argument("--style", nargs="+", required=True, help="style image(s) or built-in style names")
    p.add_argument("-o", "--output", required=True, help="output video: .mp4, .mkv, .mov, .webm or .avi")
    p.add_argument("--method", default="adain", choices=METHODS, help="stylization method (default: adain)")
    add_alpha(p)
    add_style_weights(p, "blend several styles with these weights, e.g. 0.3 0.7 or 0.3,0.7")
    add_preserve_color(p, "keep the video's colours (bare flag: luminance; default: none)")
    add_sizes(p, "the frames'")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    smooth = p.add_mutually_exclusive_group()
    smooth.add_argument("--smooth", type=float, metavar="STRENGTH",
                        help="temporal smoothing in [0, 1]: how much of the previous frame is kept where the picture "
                             "did not change (default: 1, keep it; 0 = off)")
    smooth.add_argument("--no-smooth", action="store_true", help="no temporal smoothing: each frame stylized on its own")
    p.add_argument("--flow", default="none", choices=["none", "dis"],
                   help="motion the smoothing follows: none = it smooths where the picture stands still; dis = "
                        "OpenCV's DIS optical flow: the painted texture also follows pans, zooms and moving "
                        "objects (needs opencv-python-headless; default: none)")
    p.add_argument("--feature-layer", metavar="LAYER",
                   help="also measure the frame-difference error in this relu layer's features (e.g. relu2_1)")
    add_model_flags(p, "decoder weights (default: the shipped one)")
    add_transform(p)
    add_no_progress(p)
    p.set_defaults(func=cmd_video)


def cmd_video(args) -> int:
    from ..temporal import SmoothConfig
    from ..video import smooth_config, stylize_video

    if args.transform is not None and args.method != "adain":
        raise StylekitError("--transform applies only to --method adain")
    strength = 0.0 if args.no_smooth else args.smooth
    smooth = smooth_config(SmoothConfig() if strength is None else strength, flow=args.flow)
    result = stylize_video(
        args.input, builtin_styles(args.style), args.output, method=args.method, alpha=args.alpha, style_weights=args.style_weights,
        preserve_color=args.preserve_color, size=args.size, style_size=args.style_size, device=args.device,
        weights=args.weights, encoder_weights=args.encoder_weights, transform_weights=args.transform,
        max_frames=args.max_frames,
        progress=not args.no_progress, smooth=smooth, feature_layer=args.feature_layer,
    )
    print(result.summary())
    return 0

"""``stylekit serve``: the web service and its page; the work is
:mod:`stylekit.server`."""

from __future__ import annotations

from ..errors import StylekitError
from .flags import DEVICE_HELP, ENCODER_HELP, METHODS, add_transform
from .parser import warn


def add_commands(commands) -> None:
    p = commands.add_parser("serve", help="web service with a browser page",
                            description="Serve POST /v1/stylize, a browser page at / and the API docs at /docs.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--methods", nargs="+", default=["adain"], choices=METHODS, metavar="METHOD",
                   help=f"methods to load at start-up, of {', '.join(METHODS)} (default: adain)")
    p.add_argument("--weights", help="adain decoder weights (default: the shipped one)")
    p.add_argument("--fast-weights", help="fast network weights, for --methods fast: the page's instant previews "
                                          "and webcam mode (default: the shipped one)")
    p.add_argument("--encoder-weights", help=ENCODER_HELP)
    add_transform(p)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--concurrency", type=int, default=1, help="stylizations at once; others queue (default: 1)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="per request (default: 120)")
    p.add_argument("--max-body-mb", type=float, default=32.0, metavar="MB", help="largest request body (default: 32)")
    p.add_argument("--max-side", type=int, default=2048, metavar="PX", help="largest size/style_size (default: 2048)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="server log detail (default: info)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    try:
        from ..server import Limits, serve
    except ImportError:
        raise StylekitError("stylekit serve needs the [serve] extra: pip install 'stylekit[serve]'") from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        warn(f"warning: serving on {args.host}: anyone who can reach it can use it (there is no authentication)")
    limits = Limits(
        max_body_bytes=int(args.max_body_mb * 2**20), max_concurrency=args.concurrency,
        request_timeout_s=args.timeout, max_side=args.max_side,
    )
    if args.transform is not None and "adain" not in args.methods:
        raise StylekitError("--transform applies only to --methods adain")
    serve(args.host, args.port, methods=args.methods, device=args.device, weights=args.weights,
          encoder_weights=args.encoder_weights, fast_weights=args.fast_weights, transform_weights=args.transform,
          limits=limits, log_level=args.log_level)
    return 0

"""AdaIN in ONNX: export the encoder (to the decoder's layer) and the decoder as
two ONNX models with dynamic height and width, run them with ONNX Runtime, and
quantize them to int8.

``stylekit export onnx --out DIR`` writes ``DIR/encoder.onnx``,
``DIR/decoder.onnx``, the learned covariance transform the stylizer uses with
that decoder (``DIR/transform.safetensors``, when there is one) and
``DIR/stylekit_onnx.json`` (the layer, the opset, the source weights).
:class:`OnnxAdaINStylizer` is :class:`AdaINStylizer` whose networks
(:class:`OnnxNetworks`) run in ONNX Runtime: the same controls, cache and
tiling, the step between them (AdaIN, or the transform: per-channel affine
maps and small matrix products) in PyTorch. Needs the ``[onnx]`` extra
(``onnx``, ``onnxruntime``); nothing else in stylekit does.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import torch

from .adain.model import AdaINStylizer
from .decoder import MirrorDecoder
from .encoder import pools_before
from .errors import StylekitError
from .networks import TILE_PIXELS, TILE_SIZE, FeedForwardNetworks, SpeedSettings

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
TRANSFORM_FILE = "transform.safetensors"
MANIFEST = "stylekit_onnx.json"
OPSET = 17


def require_onnx(runtime_only: bool = False):
    """Import onnx and onnxruntime, or say how to install them."""
    try:
        import onnxruntime  # noqa: F401

        if not runtime_only:
            import onnx  # noqa: F401
    except ImportError as exc:
        raise StylekitError(f"ONNX support needs the [onnx] extra ({exc.name} is missing): "
                            "pip install 'stylekit[onnx]'") from None


class _EncoderGraph(torch.nn.Module):
    def __init__(self, encoder, layer: str):
        super().__init__()
        self.encoder, self.layer = encoder, layer

    def forward(self, image):
        return self.encoder.encode(image, self.layer)


@contextlib.contextmanager
def _quiet():
    """The exporter's and the quantizer's warnings and progress lines off the terminal."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        root.setLevel(level)


def _export(module, example, path: Path, input_name: str, output_name: str, opset: int) -> None:
    axes = {input_name: {2: "height", 3: "width"}, output_name: {2: "out_height", 3: "out_width"}}
    kwargs = dict(input_names=[input_name], output_names=[output_name], opset_version=opset)
    with _quiet(), torch.no_grad():
        try:  # the TorchScript exporter: needs onnx only, and keeps H and W symbolic
            torch.onnx.export(module, (example,), str(path), dynamic_axes=axes, dynamo=False, **kwargs)
        except TypeError:  # a torch without the dynamo switch
            torch.onnx.export(module, (example,), str(path), dynamic_axes=axes, **kwargs)


def export_adain_onnx(out_dir, weights=None, encoder_weights=None, opset: int = OPSET, transform_weights=None) -> dict:
    """Write the AdaIN encoder and decoder as ONNX models into ``out_dir``, with
    the covariance transform as :meth:`AdaINStylizer.load` picks it from
    ``weights`` and ``transform_weights`` (copied beside them); returns the manifest."""
    require_onnx()
    import onnx

    from .adain.model import DEFAULT_DECODER, transform_file
    from .adain.transform import load_transform
    from .decoder import load_decoder
    from .files import atomic_write, output_directory
    from .weights import load_encoder, resolve

    out = output_directory(out_dir)
    transform_path = transform_file(weights, transform_weights)
    if transform_path is not None:
        load_transform(transform_path)  # a wrong file fails before anything is written
    decoder_path = weights if weights is not None else resolve(DEFAULT_DECODER)
    decoder = load_decoder(decoder_path).float().eval()
    layer = decoder.from_layer
    encoder = load_encoder(encoder_weights, last_layer=layer).float().eval()
    multiple = 2 ** pools_before(layer)
    example = torch.rand(1, 3, 8 * multiple, 12 * multiple)
    enc_file, dec_file = out / ENCODER_FILE, out / DECODER_FILE
    _export(_EncoderGraph(encoder, layer), example, enc_file, "image", "features", opset)
    with torch.no_grad():
        features = encoder.encode(example, layer)
    _export(decoder, features, dec_file, "features", "image", opset)
    for f in (enc_file, dec_file):
        onnx.checker.check_model(str(f))
    if transform_path is not None:
        data = Path(transform_path).read_bytes()
        atomic_write(out / TRANSFORM_FILE, lambda tmp: Path(tmp).write_bytes(data))
    manifest = {
        "format": "stylekit-adain-onnx", "version": 1, "layer": layer, "pool_multiple": multiple,
        "opset": opset, "torch": torch.__version__, "onnx": onnx.__version__,
        "encoder": ENCODER_FILE, "decoder": DECODER_FILE,
        "transform": None if transform_path is None else TRANSFORM_FILE,
        "decoder_weights": str(decoder_path), "encoder_weights": str(encoder_weights) if encoder_weights else "default",
        "transform_weights": None if transform_path is None else str(transform_path),
        "inputs": {"encoder": "image (1, 3, H, W) RGB in [0, 1], H and W multiples of "
                              f"{multiple} for content (stylekit pads)", "decoder": f"features (1, C, h, w) at {layer}"},
    }
    atomic_write(out / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2)))
    return {**manifest, "dir": str(out)}


def _session(path, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxNetworks(FeedForwardNetworks):
    """The encoder and decoder of an export (:func:`export_adain_onnx`) run by
    ONNX Runtime on the CPU, with :class:`FeedForwardNetworks`' tiling.
    ``encoder_file`` / ``decoder_file`` override the two models (e.g. int8 ones
    from :func:`quantize_adain_onnx`); ``threads``: ONNX Runtime's intra-op
    threads (default: its own choice)."""

    def __init__(self, model_dir, *, threads: int | None = None, encoder_file=None, decoder_file=None,
                 tile_pixels: int | None = TILE_PIXELS, tile_size: int = TILE_SIZE):
        require_onnx(runtime_only=True)
        model_dir = Path(model_dir)
        try:
            manifest = json.loads((model_dir / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise StylekitError(f"{model_dir} is not a stylekit ONNX export ({MANIFEST}: {exc})") from None
        self.manifest = manifest
        self.encoder = None
        self.decoder = MirrorDecoder(manifest["layer"])  # the architecture only: plan, upsamplings, margins
        speed = SpeedSettings(precision="fp32", channels_last=False, fused=False, tile_pixels=tile_pixels,
                              tile_size=tile_size)
        self._configure(torch.device("cpu"), manifest["layer"], speed)
        self.encoder_path = Path(encoder_file) if encoder_file else model_dir / manifest["encoder"]
        self.decoder_path = Path(decoder_file) if decoder_file else model_dir / manifest["decoder"]
        for path in (self.encoder_path, self.decoder_path):
            if not path.is_file():
                raise StylekitError(f"ONNX model not found: {path}")
        self.threads = threads
        self._encoder_session = _session(self.encoder_path, threads)
        self._decoder_session = _session(self.decoder_path, threads)

    def settings(self) -> dict:
        return {"backend": "onnxruntime", "encoder": str(self.encoder_path), "decoder": str(self.decoder_path),
                "threads": self.threads, "tile_pixels": self.tile_pixels, "tile_size": self.tile_size}

    @staticmethod
    def _run(session, x: torch.Tensor) -> torch.Tensor:
        name = session.get_inputs()[0].name
        out = session.run(None, {name: x.detach().float().contiguous().cpu().numpy()})[0]
        return torch.from_numpy(out)

    def _run_encoder(self, image: torch.Tensor) -> torch.Tensor:
        return self._run(self._encoder_session, image)

    def _run_decoder(self, features: torch.Tensor) -> torch.Tensor:
        return self._run(self._decoder_session, features)


class OnnxAdaINStylizer(AdaINStylizer):
    """:class:`AdaINStylizer` whose encoder and decoder run in ONNX Runtime
    (:class:`OnnxNetworks`, which takes ``model_dir`` and the keywords but
    ``eps``, ``cache_size`` and ``transform_weights``). The export's covariance
    transform runs when it has one; ``transform_weights``: another transform's
    file instead, or False for plain AdaIN."""

    def __init__(self, model_dir, *, eps: float = 1e-5, cache_size: int = 8, transform_weights=None,
                 **network_options):
        from .adain.transform import load_transform

        networks = OnnxNetworks(model_dir, **network_options)
        if transform_weights is None and networks.manifest.get("transform"):
            transform_weights = Path(model_dir) / networks.manifest["transform"]
        transform = None if transform_weights in (None, False, "none") else load_transform(transform_weights)
        self._attach(networks, eps, cache_size, transform)

    @property
    def manifest(self) -> dict:
        return self.networks.manifest


class _Feed:
    """An onnxruntime CalibrationDataReader over a list of arrays."""

    def __init__(self, name: str, arrays):
        self.name, self.items = name, iter(list(arrays))

    def get_next(self):
        item = next(self.items, None)
        return None if item is None else {self.name: item}

    def rewind(self):  # some onnxruntime versions call it
        pass


def quantize_adain_onnx(model_dir, out_dir, calibration: list[tuple[torch.Tensor, torch.Tensor]],
                        mode: str = "static", parts=("encoder", "decoder")) -> dict:
    """int8 versions of an export's models, in ``out_dir``: ``static`` (QDQ,
    per-channel int8 weights, uint8 activations calibrated by min/max on
    ``calibration`` (content, style) pairs of (1, 3, H, W) images: the encoder
    sees the images, the decoder the stylizer's targets for them, through the
    export's transform when it has one) or ``dynamic`` (weights
    only, activations quantized at run time). Returns {part: path}."""
    require_onnx()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    if mode not in ("static", "dynamic"):
        raise StylekitError(f"mode must be static or dynamic, got {mode!r}")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref = OnnxAdaINStylizer(model_dir, cache_size=0, tile_pixels=None)
    images, targets = [], []
    with torch.no_grad():
        for content, style in calibration:
            c = torch.nn.functional.pad(content, (0, (-content.shape[-1]) % ref.multiple, 0,
                                                  (-content.shape[-2]) % ref.multiple), mode="replicate")
            images += [c, style]
            targets.append(ref.target_features(ref.networks.encode_image(c), [ref.prepare_style(style)]))
    paths = {}
    for part in parts:
        src = ref.networks.encoder_path if part == "encoder" else ref.networks.decoder_path
        dst = out_dir / f"{part}.int8-{mode}.onnx"
        with _quiet():
            if mode == "dynamic":
                quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)
            else:
                data = images if part == "encoder" else targets
                name = "image" if part == "encoder" else "features"
                quantize_static(str(src), str(dst), _Feed(name, [d.float().contiguous().numpy() for d in data]),
                                quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
        paths[part] = str(dst)
    return paths


def onnx_versions() -> dict:
    out = {}
    for name in ("onnx", "onnxruntime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


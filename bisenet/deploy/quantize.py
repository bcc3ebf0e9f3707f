"""Static int8 quantisation of an exported model with onnxruntime: QDQ nodes, int8 weights per
output channel, uint8 activations whose ranges are calibrated on images preprocessed exactly as
for inference (given by the caller: ``bisenet.data.calibration`` reads them from a dataset). The
classifier and the final upsampling stay in fp32 (see ``KEEP_FP32``)."""
import io
import os
import tempfile
import warnings

import torch

from bisenet.data.io import DatasetError
from bisenet.deploy.export import export_onnx
from bisenet.errors import require
from bisenet.outputs import write_bytes

# Measured on the quickstart model (synthetic val split, 74.41% mIoU in fp32; AVX2, 2 threads,
# benchmarks/fast_accuracy.py): pixels whose class matches fp32 / mIoU / s at 1024x2048, with
# nothing kept in fp32 99.52% / 74.33 / 1.14, the final upsampling 99.60% / 74.33 / 1.07, it and
# the classifier (the 1x1 convolution whose logits are compared across classes) 99.62% / 74.33 /
# 1.10: the times are within the noise, so the classifier and the upsampling stay fp32.
KEEP_FP32 = ("classifier", "upsample")


def random_calibration_inputs(count, size, seed=0):
    """Normalised-looking random images, for timing where no dataset is at hand: int8 speed does
    not depend on the values, only its accuracy does."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 3, *size, generator=generator).numpy() for _ in range(count)]


def fp32_nodes(graph, keep=KEEP_FP32):
    """Names of the nodes of ``graph`` (an ONNX GraphProto) left in fp32: with "upsample" the
    Resize that makes the output, with "classifier" the convolution feeding it."""
    producer = {out: node for node in graph.node for out in node.output}
    names = []
    node = producer.get(graph.output[0].name)
    if node is not None and node.op_type == "Resize":
        if "upsample" in keep:
            names.append(node.name)
        node = producer.get(node.input[0])
    if node is not None and node.op_type == "Conv" and "classifier" in keep:
        names.append(node.name)
    return names


class _Reader:
    """onnxruntime's calibration data reader protocol over a list of inputs."""

    def __init__(self, inputs):
        self.inputs = iter(inputs)

    def get_next(self):
        image = next(self.inputs, None)
        return None if image is None else {"image": image}


def quantize_int8(model, inputs, path=None, keep_fp32=KEEP_FP32, reduce_range=False):
    """The int8 ONNX model (bytes, also written atomically to ``path`` if given) of the eval-mode ``model``,
    BatchNorm folded, any input size, calibrated on ``inputs`` (1x3xHxW arrays preprocessed as for
    inference: ``bisenet.data.calibration.calibration_inputs``)."""
    onnx = require("onnx", "deploy", "int8 quantisation")
    quantization = require("onnxruntime.quantization", "deploy", "int8 quantisation")
    if not inputs:
        raise DatasetError("int8 calibration needs at least one image")
    with tempfile.TemporaryDirectory() as folder:
        fp32, ready, int8 = (os.path.join(folder, f"{name}.onnx") for name in ("fp32", "ready", "int8"))
        export_onnx(model, fp32, tuple(inputs[0].shape[2:]), dynamic=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # onnxruntime's advice on its own pre-processing
            # Shape inference and graph clean-up, as onnxruntime recommends before quantising.
            quantization.quant_pre_process(fp32, ready)
            graph = onnx.load(ready).graph
            quantization.quantize_static(
                ready, int8, _Reader(inputs), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                reduce_range=reduce_range, nodes_to_exclude=fp32_nodes(graph, keep_fp32),
                # The calibration keeps each tensor's min and max per image, not the tensors.
                calibrate_method=quantization.CalibrationMethod.MinMax)
        with open(int8, "rb") as f:
            data = f.read()
    if path is not None:
        write_bytes(path, data)
    return data


def count_quantized(model_bytes):
    """(int8, fp32) counts of the convolutions of an ONNX model, by the type of the stored weights
    each reads (through a DequantizeLinear when quantised)."""
    graph = require("onnx", "deploy", "reading ONNX models").load(io.BytesIO(model_bytes)).graph
    stored = {t.name: t.data_type for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    int8 = total = 0
    for node in graph.node:
        if node.op_type == "Conv":
            weight = node.input[1]
            while weight not in stored:
                weight = producer[weight].input[0]
            total += 1
            int8 += stored[weight] == 3  # onnx.TensorProto.INT8
    return int8, total - int8

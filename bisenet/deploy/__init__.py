"""Deployment, in one direction: ``export`` turns a model into files (BatchNorm folded, ONNX,
TorchScript) and depends on the models only; ``runtime`` runs models fast (onnxruntime on the
CPU, fp16 on CUDA) and may use ``export``."""

"""Static post-training int8 quantization with an accuracy guard (``python -m refinenet_tf quantize``).

One module per job: ``onnx_graph`` (the frozen inference graph as an ONNX model of the batch outputs),
``calibration`` (the user's images as ONNX Runtime calibration data), ``settings`` (the quantization settings,
chosen from the CPU's flags), ``sensitivity`` (which layers suffer most from int8), ``guard`` (int8 against
float32 on a labelled list, layers back to float until the loss is within the tolerance) and ``folder`` (the
quantized model folder). Its modules import ONNX Runtime; nothing imports them at ``import refinenet_tf`` time.
"""

"""The quantization settings, and their choice from the CPU's flags (the no-VNNI saturation trap).

ONNX Runtime's x86 int8 convolutions multiply uint8 activations by int8 weights. Without VNNI they use
``VPMADDUBSW``, which adds pairs of products into int16 and saturates when both weights of a pair are large;
with VNNI (AVX512_VNNI, AVX-VNNI or AMX) the products add into int32 and nothing saturates. Without VNNI,
weights are therefore quantized to 7 bits (``reduce_range``), which keeps every pair sum within int16.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from onnxruntime.quantization import QuantFormat, QuantType

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # /proc/cpuinfo flags of CPUs with int8 dot products
# Ops computed in int8; softmax, argmax and resizes stay float (measured: 0.3 mIoU points better on the toy
# model than quantizing every op ONNX Runtime can).
QUANTIZED_OPS = ("Conv", "MatMul", "Add", "MaxPool")


@dataclass(frozen=True)
class QuantSettings:
    """How weights and activations are quantized (QDQ format, per-channel weights) and why."""

    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    reduce_range: bool = False
    reason: str = ""
    per_channel: bool = True
    op_types: tuple[str, ...] = field(default=QUANTIZED_OPS)

    def quantize_static_arguments(self) -> dict:
        """The keyword arguments of ``onnxruntime.quantization.quantize_static`` for these settings."""
        return {"quant_format": QuantFormat.QDQ, "per_channel": self.per_channel,
                "activation_type": QuantType[self.activation_type], "weight_type": QuantType[self.weight_type],
                "reduce_range": self.reduce_range, "op_types_to_quantize": list(self.op_types)}

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (model.json's ``int8.settings``)."""
        return {**asdict(self), "format": "QDQ", "op_types": list(self.op_types)}


def settings_for_cpu(flags: Iterable[str]) -> QuantSettings:
    """uint8 activations and int8 weights; 7-bit weights (``reduce_range``) on CPUs without VNNI."""
    found = sorted(set(flags) & set(VNNI_FLAGS))
    if found:
        return QuantSettings(reason=f"{', '.join(found)}: int8 dot products add into int32, no saturation")
    return QuantSettings(reduce_range=True, reason="no VNNI: 7-bit weights keep VPMADDUBSW's int16 pair sums "
                                                   "from saturating")

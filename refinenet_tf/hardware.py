"""What this machine offers for prediction: CPU features, oneDNN, GPUs, and the precision ``auto`` picks.

bfloat16 pays where the hardware computes it natively: CPUs with AVX512_BF16 or AMX-BF16 (through
oneDNN), or a GPU. Elsewhere TensorFlow emulates it, correctly but more slowly than float32, so ``auto``
chooses float32 there.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from refinenet_tf.errors import ConfigError, parameter

PRECISIONS = ("auto", "float32", "bfloat16", "int8")  # int8: a quantized model in ONNX Runtime
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
_BFLOAT16_FEATURES = ("avx512_bf16", "amx_bf16")
_ONEDNN_DEFAULT_FEATURES = {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile"}
_LOG = logging.getLogger(__name__)


def cpu_flags() -> set[str]:
    """The flags of the first CPU in /proc/cpuinfo (empty where there is no such file)."""
    path = Path("/proc/cpuinfo")
    for line in path.read_text().splitlines() if path.is_file() else ():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_features() -> dict[str, bool]:
    """Whether the CPU has each of :data:`CPU_FEATURES`."""
    flags = cpu_flags()
    return {name: name in flags for name in CPU_FEATURES}


def onednn_enabled() -> bool:
    """Whether TensorFlow uses oneDNN: ``TF_ENABLE_ONEDNN_OPTS`` when set, else TensorFlow's own choice on
    Linux x86 (on where the CPU has neural-network instructions: VNNI, AVX512_BF16 or AMX; off on AVX2-only)."""
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if setting is not None:
        return setting.strip().lower() not in ("0", "false")
    return bool(cpu_flags() & _ONEDNN_DEFAULT_FEATURES)


def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU."""
    import tensorflow as tf  # deferred: the CPU checks need no TensorFlow

    return bool(tf.config.list_physical_devices("GPU"))


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision prediction runs in, and why."""

    precision: str
    reason: str

    def __str__(self) -> str:
        return f"{self.precision} ({self.reason})"


def native_bfloat16() -> str | None:
    """What computes bfloat16 natively here ('a GPU', 'AVX512_BF16', ...), or None."""
    if gpu_available():
        return "a GPU"
    found = [name.upper() for name in _BFLOAT16_FEATURES if cpu_features()[name]]
    return " and ".join(found) or None


def choose_precision(requested: str = "float32") -> PrecisionChoice:
    """Resolve ``auto`` (bfloat16 where the hardware computes it, else float32); check the others (``int8`` is
    never chosen by ``auto``: it needs a quantized model, see :mod:`refinenet_tf.quantize`).

    bfloat16 asked for on a machine without native support runs (emulated, slower) with one warning.
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"{parameter('precision')} must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "int8":
        return PrecisionChoice("int8", "a quantized model, run by ONNX Runtime")
    native = native_bfloat16() if requested != "float32" else None
    if requested == "auto":
        if native:
            return PrecisionChoice("bfloat16", f"auto: {native} computes bfloat16")
        return PrecisionChoice("float32", "auto: no AVX512_BF16, AMX-BF16 or GPU here, bfloat16 would be emulated")
    if requested == "bfloat16" and not native:
        _LOG.warning("bfloat16 is emulated on this CPU (no AVX512_BF16 or AMX-BF16): correct but slower than "
                     "float32; --precision auto chooses for the hardware")
        return PrecisionChoice("bfloat16", "asked for; emulated here")
    return PrecisionChoice(requested, "asked for" if requested == "bfloat16" else "the default")


def machine_summary() -> dict:
    """What ``info`` reports: CPU cores and features, oneDNN, GPUs, and what ``--precision auto`` picks."""
    auto = choose_precision("auto")
    return {"cpu_cores": os.cpu_count(), "cpu_features": cpu_features(), "onednn": onednn_enabled(),
            "gpu": gpu_available(), "precision_auto": auto.precision, "precision_auto_reason": auto.reason}

"""``info``: this machine (CPU features, oneDNN, GPUs, what ``--precision auto`` picks and why), then the
parameter count, multiply-adds and output shape of each architecture asked for (or of a checkpoint's model), as a
short summary, or with ``--json`` as one JSON line each."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from refinenet_tf.architectures import ARCHITECTURES
from refinenet_tf.cli import flags
from refinenet_tf.defaults import DEFAULT_ARCH, NUM_CLASSES
from refinenet_tf.description import ModelDescription, default_description, load_description
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.hardware import machine_summary


def model_info(arch: str, num_classes: int, input_size: tuple[int, int],
               description: ModelDescription | None = None) -> dict:
    """Build ``arch`` (or ``description``'s model) for one ``input_size`` image and describe it."""
    import tensorflow as tf  # deferred: --help needs no TensorFlow

    from refinenet_tf.models.complexity import count_multiply_adds, count_parameters  # deferred: TensorFlow
    from refinenet_tf.models.model import build_model  # deferred: TensorFlow

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, *input_size, 3], name="images")
        output = build_model(images, description or default_description(arch, num_classes))
        parameters = count_parameters(tf.compat.v1.global_variables())
        multiply_adds = count_multiply_adds(graph)
    return {
        "arch": arch,
        "num_classes": num_classes,
        "input_size": list(input_size),
        "parameters": parameters,
        "parameters_m": round(parameters / 1e6, 2),
        "multiply_adds_g": round(multiply_adds / 1e9, 2),
        "output_shape": output.logits.shape.as_list(),
        "end_points": {name: output.end_points[name].shape.as_list() for name in ("l1", "l2", "l3", "l4")},
    }


def machine_lines(machine: dict) -> list[str]:
    """The machine part of the summary."""
    features = " ".join(machine["cpu_features"]) or "none of note"
    reason = machine["precision_auto_reason"].removeprefix("auto: ")
    return [f"machine: {machine['cpu_cores']} CPU cores ({features}); oneDNN {'on' if machine['onednn'] else 'off'}; "
            f"{'a GPU' if machine['gpu'] else 'no GPU'}",
            "threads: the commands use every core unless given --threads N",
            f"--precision auto picks {machine['precision_auto']}: {reason}"]


def model_lines(info: dict) -> list[str]:
    """One model's part of the summary."""
    height, width = info["input_size"]
    _, out_height, out_width, classes = info["output_shape"]
    return [f"{info['arch']}, {info['num_classes']} classes, for a {height}x{width} image:",
            f"  parameters     {info['parameters_m']:.2f} M ({info['parameters']:,})",
            f"  multiply-adds  {info['multiply_adds_g']:.1f} G",
            f"  logits         {out_height}x{out_width}x{classes} (output stride 4, resized to the image)"]


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser("python -m refinenet_tf info", __doc__, [
        "python -m refinenet_tf info", "python -m refinenet_tf info --arch lw-refinenet-mobilenetv2 --num-classes 21",
        "python -m refinenet_tf info snapshots/ --json"])
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="a checkpoint (file prefix or folder) whose model.json names the model to describe")
    parser.add_argument("--arch", choices=[*ARCHITECTURES, "all"], default=None,
                        help=f"architecture, or 'all' for every one (default {DEFAULT_ARCH})")
    parser.add_argument("--num-classes", type=int, default=None, help=f"classes (default {NUM_CLASSES})")
    parser.add_argument("--input-size", type=flags.parse_size, default=(468, 625), help="HEIGHT,WIDTH (default 468,625)")
    parser.add_argument("--json", action="store_true", help="one JSON line for the machine and one per model")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    machine = machine_summary()
    if args.checkpoint is not None:
        if args.arch is not None or args.num_classes is not None:
            raise ConfigError(f"give a checkpoint or {parameter('arch')} and {parameter('num_classes')}, not both")
        description = load_description(args.checkpoint)
        models = [(description.arch, description.num_classes, description)]
    else:
        arches = list(ARCHITECTURES) if args.arch == "all" else [args.arch or DEFAULT_ARCH]
        models = [(arch, args.num_classes or NUM_CLASSES, None) for arch in arches]
    if args.json:
        print(json.dumps({"machine": machine}), flush=True)
    else:
        print("\n".join(machine_lines(machine)), flush=True)
    for arch, num_classes, description in models:
        info = model_info(arch, num_classes, args.input_size, description)
        print(json.dumps(info) if args.json else "\n".join(["", *model_lines(info)]), flush=True)

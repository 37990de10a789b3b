"""int8 against float32: the float32 Predictor (TensorFlow) and int8 in ONNX Runtime, in one run, batch 1.

Variants, all computing the ``labels`` of one image (resize to the image size and argmax included):

- ``float32``: the Predictor in float32, what ``inference.py`` and ``deploy`` run;
- ``onnx-float32``: the same frozen graph as an ONNX model in ONNX Runtime (the model int8 is made from);
- ``int8``: the quantized folder with this CPU's settings (``settings_for_cpu``), run by the Predictor;
- ``int8-no-vnni``: the settings chosen for CPUs without VNNI (7-bit weights), run on this CPU.

The weights are a random initialisation (speed does not depend on them), calibrated on a few synthetic scenes
without the accuracy guard. The variants are timed interleaved; ratios are against ``float32``.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from bench_inference import random_checkpoint
from common import (
    base_parser,
    machine_info,
    markdown_table,
    stats_ms,
    time_interleaved,
    write_sample_dataset,
    write_section,
)

NUM_CLASSES = 21


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="lw-refinenet-resnet50", help="architecture (default %(default)s)")
    parser.add_argument("--size", default="320x320", help="HEIGHTxWIDTH (default %(default)s)")
    parser.add_argument("--calibration-images", type=int, default=8, help="synthetic scenes to calibrate on")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.repeats, args.warmup, args.calibration_images = "64x64", 1, 1, 2
    args.size = tuple(int(v) for v in args.size.split("x"))
    return args


def make_runners(args, directory: str) -> dict:
    """A function per variant running one image and returning its labels."""
    from refinenet_tf.description import default_description
    from refinenet_tf.hardware import cpu_flags
    from refinenet_tf.predict.int8 import FLOAT_FILE, OnnxPredictor
    from refinenet_tf.predict.predictor import Predictor
    from refinenet_tf.quantize.folder import quantize_checkpoint
    from refinenet_tf.quantize.settings import settings_for_cpu

    description = default_description(args.arch, NUM_CLASSES)
    os.makedirs(os.path.join(directory, "random"))
    checkpoint = random_checkpoint(description, os.path.join(directory, "random"))
    calibration = write_sample_dataset(os.path.join(directory, "scenes"), args.calibration_images, args.size,
                                       NUM_CLASSES)
    folders = {"int8": settings_for_cpu(cpu_flags()), "int8-no-vnni": settings_for_cpu(())}
    for name, settings in folders.items():
        quantize_checkpoint(checkpoint, description, os.path.join(directory, name), calibration,
                            settings=settings, threads=args.threads)
    predictors = {"float32": Predictor(checkpoint, description, threads=args.threads),
                  **{name: Predictor(os.path.join(directory, name), threads=args.threads) for name in folders}}
    runners = {name: (lambda image, p=predictor: p.predict(image, ("labels",)).labels)
               for name, predictor in predictors.items()}
    onnx_float = OnnxPredictor(os.path.join(directory, "int8", FLOAT_FILE), args.threads)
    runners["onnx-float32"] = lambda image: onnx_float.predict(image, ("batch_labels",))["batch_labels"][0]
    return runners, {name: settings.to_dict() for name, settings in folders.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    image = np.random.default_rng(0).integers(0, 256, (*args.size, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as directory:
        runners, settings = make_runners(args, directory)
        order = ("float32", "onnx-float32", "int8", "int8-no-vnni")
        times = time_interleaved({name: (lambda f=runners[name]: f(image)) for name in order}, args.repeats,
                                 args.warmup)
        reference = runners["float32"](image)
        agreement = {name: float(np.mean(runners[name](image) == reference)) for name in order}
    base = np.median(times["float32"])
    rows = [[name, stats_ms(times[name]), f"{np.median(times[name]) / base:.2f}x",
             f"{100 * agreement[name]:.1f}%",
             _settings_text(settings.get(name))] for name in order]
    table = markdown_table(["variant", "ms median (min-max)", "vs float32", "labels = float32 (random weights)",
                            "int8 settings"], rows)
    body = (machine_info(args) + f"\n- Model: {args.arch}, {NUM_CLASSES} classes, random weights, "
            f"{args.size[0]}x{args.size[1]}, calibrated on {args.calibration_images} synthetic scenes\n\n" + table)
    write_section(args.output, "int8", "int8 (ONNX Runtime) against float32", body)
    print(body)


def _settings_text(settings: dict | None) -> str:
    if settings is None:
        return ""
    reduce = ", 7-bit weights" if settings["reduce_range"] else ""
    return f"{settings['activation_type']} activations, {settings['weight_type']} weights{reduce}"


if __name__ == "__main__":
    main()

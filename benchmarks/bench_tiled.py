"""Tiled (sliding-window) prediction: time and peak memory of large images, tiled and whole where the whole
image fits, and the throughput of batched whole-image prediction (``inference.py --batch-size``).

Every (size, variant) runs in a process of its own, so its peak resident memory (VmHWM) is its own: model,
image, blended logits and labels included. ``tiled`` is :meth:`Predictor.predict_tiled` followed by the banded
labels; ``whole`` the Predictor's whole-image labels. ``batch-N`` predicts the small images N at a time.
Without ``--checkpoint`` the weights are a random initialisation (times and memory do not depend on them).
``--quick`` (a smoke test) runs one small size, one batch size and every variant in one process: its peak
memory is not per variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from bench_inference import random_checkpoint
from common import (
    base_parser,
    machine_info,
    markdown_table,
    peak_rss_mb,
    run_workers,
    stats_ms,
    write_section,
)

ARCH = "lw-refinenet-resnet50"
NUM_CLASSES = 21


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2048x2048,6144x8192", help="comma-separated HEIGHTxWIDTH")
    parser.add_argument("--whole-max-pixels", type=int, default=2048 * 2048,
                        help="also predict images up to this many pixels whole (default 2048x2048)")
    parser.add_argument("--tile", default="1024,1024", help="tile HEIGHT,WIDTH")
    parser.add_argument("--tile-overlap", type=float, default=0.25)
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "auto"))
    parser.add_argument("--batch-sizes", default="1,4", help="batch sizes of the throughput test")
    parser.add_argument("--batch-images", type=int, default=20, help="small images in the throughput test")
    parser.add_argument("--batch-image-size", default="256x256", help="their HEIGHTxWIDTH")
    parser.add_argument("--checkpoint", help="weights to use (default: random)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # size:variant, comma-separated
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.sizes, args.tile, args.whole_max_pixels, args.repeats, args.warmup = "96x128", "64,64", 10**5, 1, 0
        args.batch_sizes, args.batch_images, args.batch_image_size = "2", 4, "64x64"
    args.tile = tuple(int(v) for v in args.tile.split(","))
    return args


def size_of(text: str) -> tuple[int, int]:
    height, width = text.split("x")
    return int(height), int(width)


def worker(args) -> list[dict]:
    """Times and peak memory of each ``--worker`` variant, one after the other in this process."""
    from refinenet_tf.predict.predictor import Predictor

    predictor = Predictor(args.weights, threads=args.threads, precision=args.precision)
    predictor.predict(np.zeros((64, 64, 3), np.uint8), ("labels",))  # the graph's one-off preparation
    return [measure(args, predictor, *name.split(":")) for name in args.worker.split(",")]


def measure(args, predictor, size: str, variant: str) -> dict:
    """Times of one variant, and the peak memory of this process after it."""
    rng = np.random.default_rng(0)
    if variant.startswith("batch-"):
        batch = int(variant.split("-")[1])
        images = rng.integers(0, 256, (args.batch_images, *size_of(size), 3), dtype=np.uint8)

        def run():
            for start in range(0, len(images), batch):
                predictor.predict_batch(images[start:start + batch], ("labels",))
    else:
        image = rng.integers(0, 256, (*size_of(size), 3), dtype=np.uint8)

        def run():
            if variant == "tiled":
                return predictor.predict_tiled(image, args.tile, args.tile_overlap).labels()
            return predictor.predict(image, ("labels",)).labels

    for _ in range(args.warmup):
        run()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"size": size, "variant": variant, "times": times, "peak_mb": peak_rss_mb()}


def report(args, results: list[dict]) -> str:
    rows = []
    for entry in results:
        if entry["variant"].startswith("batch-"):
            rate = args.batch_images / np.median(entry["times"])
            rows.append([f"{args.batch_images} x {entry['size']}", entry["variant"], stats_ms(entry["times"]),
                         f"{rate:.2f} images/s", f"{entry['peak_mb']:.0f}"])
        else:
            pixels = np.prod(size_of(entry["size"])) / 1e6
            tiled = f"tiled {args.tile[0]}x{args.tile[1]}, overlap {args.tile_overlap:g}"
            rows.append([entry["size"], tiled if entry["variant"] == "tiled" else "whole image",
                         stats_ms(entry["times"]), f"{pixels / np.median(entry['times']):.2f} Mpixel/s",
                         f"{entry['peak_mb']:.0f}"])
    table = markdown_table(["image", "prediction", "time ms, median (min-max)", "rate", "peak RSS MiB"], rows)
    return "\n".join([machine_info(args), f"- Model: {ARCH}, {NUM_CLASSES} classes, {args.precision}, labels "
                                          "output (argmax at the image size)", "", table])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    from refinenet_tf.description import default_description

    workers = []
    for size in args.sizes.split(","):
        if np.prod(size_of(size)) <= args.whole_max_pixels:
            workers.append(f"{size}:whole")
        workers.append(f"{size}:tiled")
    workers += [f"{args.batch_image_size}:batch-{batch}" for batch in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        weights = args.checkpoint
        if not weights:
            description = default_description(ARCH, NUM_CLASSES)
            random_checkpoint(description, directory)
            description.save(directory)
            weights = directory
        results = run_workers(__file__, [*args.argv, "--weights", weights], workers, together=args.quick)
    body = report(args, results)
    write_section(args.output, "tiled", "Tiled prediction and batched throughput", body)
    print(body)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()

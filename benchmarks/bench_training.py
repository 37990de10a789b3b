"""Training throughput (images/s) of the project's own trainer (``refinenet_tf.train.trainer``), in float32
and bfloat16, and of the PyTorch reference (``--torch``).

Batch 2 by default, DeepLab augmentation (random scale and mirror, pad and crop), SGD with momentum,
frozen batch norm, on JPEG/PNG files written to a temporary directory, so reading and augmenting run
alongside the steps as in a real run. Each configuration (architecture x crop x precision) runs in its own
process; the first steps (graph optimisation, allocation) are not timed. The weights are random and
the learning rate tiny, so the loss stays finite; neither changes the work of a step. The PyTorch
reference (LW ResNet-50 as in ``bench_torch_reference.py``, NCHW and channels_last) trains the same
step (SGD with momentum, batch norm frozen, cross-entropy at stride 4) on random batches, with no reader.
``--quick`` (a smoke test) trains two steps of batch 1 at one small crop on two small images, every configuration
in one process: its peak memory is not per configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np
from common import (
    base_parser,
    machine_info,
    markdown_table,
    peak_rss_mb,
    run_workers,
    stats_ms,
    write_sample_dataset,
    write_section,
)

NUM_CLASSES = 21
SOURCE_SIZE = (375, 500)  # VOC-like images
DATASET_IMAGES = 16
TINY_LEARNING_RATE = 1e-12  # random weights would diverge at the usual rate; the work per step is the same


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default="lw-refinenet-resnet50", help="comma-separated architectures")
    parser.add_argument("--crops", default="321,512", help="comma-separated square crop sizes")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--precisions", default="float32,bfloat16", help="comma-separated compute types")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch reference (needs torch)")
    parser.add_argument("--tag", default="", help="suffix of the section name (keeps several runs apart)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # arch@crop@precision, comma-separated
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.source_size, args.dataset_images = SOURCE_SIZE, DATASET_IMAGES
    if args.quick:
        args.crops, args.repeats, args.warmup, args.batch_size = "65", 1, 1, 1
        args.source_size, args.dataset_images = (60, 80), 2
    return args


def worker(args) -> list[dict]:
    """The results of each ``--worker`` configuration, one after the other in this process."""
    return [train(args, *name.split("@")) for name in args.worker.split(",")]


def train(args, arch: str, crop: str, precision: str) -> dict:
    """Train ``warmup + repeats`` steps of one 'arch@crop@precision' configuration; per-step seconds."""
    from refinenet_tf.description import default_description
    from refinenet_tf.train.trainer import TrainConfig, Trainer

    if arch.startswith("torch"):
        return torch_worker(args, arch, int(crop))
    with tempfile.TemporaryDirectory() as directory:
        data_list = write_sample_dataset(directory, args.dataset_images, args.source_size, NUM_CLASSES)
        config = TrainConfig(
            description=default_description(arch, NUM_CLASSES), data_dir=directory, data_list=data_list,
            snapshot_dir=f"{directory}/snapshots", batch_size=args.batch_size, input_size=(int(crop), int(crop)),
            num_steps=args.warmup + args.repeats, save_pred_every=10**9, save_num_images=0,
            random_scale=True, random_mirror=True, threads=args.threads or None, learning_rate=TINY_LEARNING_RATE,
            precision=precision)
        trainer = Trainer(config)
        stamps = []
        trainer.run(lambda step, loss: stamps.append(time.perf_counter()))
    step_seconds = np.diff(stamps)[max(args.warmup, 1) - 1:]  # the first step has no start stamp
    return {"arch": arch, "crop": int(crop), "precision": precision, "seconds": step_seconds.tolist(),
            "peak_rss_mb": peak_rss_mb()}


def torch_worker(args, layout: str, crop: int) -> dict:
    """Per-step seconds of the PyTorch reference training on random batches (``layout``: torch-nchw or
    torch-channels-last)."""
    import torch
    from bench_torch_reference import torch_model
    from torch.nn import functional

    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = torch_model()  # eval mode: batch norm frozen, as ours
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.requires_grad_(False)
    last = layout == "torch-channels-last"
    if last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=TINY_LEARNING_RATE,
                                momentum=0.9)
    images = torch.rand(args.batch_size, 3, crop, crop)
    if last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, NUM_CLASSES, (args.batch_size, (crop + 3) // 4, (crop + 3) // 4))
    seconds = []
    for step in range(args.warmup + args.repeats):
        start = time.perf_counter()
        optimizer.zero_grad()
        functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
    return {"arch": layout, "crop": crop, "precision": "float32", "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def report(args, results: list[dict]) -> str:
    rows = []
    for result in results:
        seconds = np.asarray(result["seconds"])
        rows.append([result["arch"], result["precision"], f"{result['crop']}x{result['crop']}", args.batch_size,
                     stats_ms(seconds),
                     f"{args.batch_size / np.median(seconds):.2f}", f"{result['peak_rss_mb']:.0f}"])
    table = markdown_table(["implementation", "precision", "crop", "batch", "ms per step median (min-max)",
                            "images/s (median)",
                            "peak RSS MiB"], rows)
    notes = ("Trainer threads: `TrainConfig.threads` sets intra- and inter-op threads and the reader's parallel "
             "calls to the same number (`--threads`; 0 leaves TensorFlow's defaults).")
    return machine_info(args) + "\n\n" + table + "\n\n" + notes


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    configurations = [f"{arch}@{crop}@{precision}" for arch in args.archs.split(",")
                      for crop in args.crops.split(",") for precision in args.precisions.split(",")]
    if args.torch:
        configurations += [f"{layout}@{crop}@float32" for layout in ("torch-nchw", "torch-channels-last")
                           for crop in args.crops.split(",")]
    results = run_workers(__file__, args.argv, configurations, together=args.quick)
    body = report(args, results)
    write_section(args.output, "training", "Training throughput", body, tag=args.tag)
    print(body)


if __name__ == "__main__":
    main()

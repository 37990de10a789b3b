"""Training throughput (images/s) of the project's own trainer (``refinenet_tf.train.trainer``), in float32
and bfloat16, and of the PyTorch reference (``--torch``).

Batch 2 by default, DeepLab augmentation (random scale and mirror, pad and crop), SGD with momentum,
frozen batch norm, on JPEG/PNG files written to a temporary directory, so reading and augmenting run
alongside the steps as in a real run. Each configuration (architecture x crop x precision) runs in its own
process; the first steps (graph optimisation, allocation) are not timed. The weights are random and
the learning rate tiny, so the loss stays finite; neither changes the work of a step. The PyTorch
reference (LW ResNet-50 as in ``bench_torch_reference.py``, NCHW and channels_last) trains the same
step (SGD with momentum, batch norm frozen, cross-entropy at stride 4) on random batches, with no reader.
``--ops`` also traces one step after the timed ones (TensorFlow's step statistics) and lists where its time goes, by
kind of operation, in the forward pass, the backward pass (the gradient's ops) and the update (the optimizer's). Traced times overlap when
the inter-op pool runs ops side by side, so the shares, not the sums, are what to read.
``--quick`` (a smoke test) trains two steps of batch 1 at one small crop on two small images, every configuration
in one process: its peak memory is not per configuration.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
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
    parser.add_argument("--ops", action="store_true", help="also trace one step and list its time by kind of op")
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
    """Train ``warmup + repeats`` steps of one 'arch@crop@precision' configuration (and one traced step after them
    with ``--ops``); per-step seconds and the traced step's op times."""
    from refinenet_tf.description import default_description
    from refinenet_tf.train.trainer import TrainConfig, Trainer

    if arch.startswith("torch"):
        return torch_worker(args, arch, int(crop))
    with tempfile.TemporaryDirectory() as directory:
        data_list = write_sample_dataset(directory, args.dataset_images, args.source_size, NUM_CLASSES)
        config = TrainConfig(
            description=default_description(arch, NUM_CLASSES), data_dir=directory, data_list=data_list,
            snapshot_dir=f"{directory}/snapshots", batch_size=args.batch_size, input_size=(int(crop), int(crop)),
            num_steps=args.warmup + args.repeats + int(args.ops), save_pred_every=10**9, save_num_images=0,
            random_scale=True, random_mirror=True, threads=args.threads or None, learning_rate=TINY_LEARNING_RATE,
            precision=precision)
        trainer = Trainer(config)
        stamps = []
        with traced_step(config.num_steps if args.ops else None) as trace:  # the step after the timed ones
            trainer.run(lambda step, loss: stamps.append(time.perf_counter()))
    step_seconds = np.diff(stamps)[max(args.warmup, 1) - 1:-1 if args.ops else None]  # the first has no start stamp
    return {"arch": arch, "crop": int(crop), "precision": precision, "seconds": step_seconds.tolist(),
            "peak_rss_mb": peak_rss_mb(), "ops": op_times(trace)}


@contextlib.contextmanager
def traced_step(step: int | None):
    """While the trainer runs, trace its ``step``-th update (1-based; None: none) with TensorFlow's step statistics,
    which the yielded list receives. Session.run is wrapped for the length of the block (a benchmark's probe)."""
    import tensorflow as tf

    session_class, traces, calls = tf.compat.v1.Session, [], []
    plain_run = session_class.run

    def run(session, fetches, feed_dict=None, options=None, run_metadata=None):
        if step is not None and isinstance(fetches, dict) and "train" in fetches:
            calls.append(None)
            if len(calls) == step:
                metadata = tf.compat.v1.RunMetadata()
                trace = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
                result = plain_run(session, fetches, feed_dict, trace, metadata)
                traces.append(metadata.step_stats)
                return result
        return plain_run(session, fetches, feed_dict, options, run_metadata)

    session_class.run = run
    try:
        yield traces
    finally:
        session_class.run = plain_run


def op_times(traces: list) -> dict[str, float]:
    """Milliseconds per 'forward|backward|update OpType' in the traced step (the gradient's ops are the backward pass,
    the optimizer's the update; oneDNN's _MklNative/_Mkl prefixes dropped)."""
    times = collections.Counter()
    for step_stats in traces:
        for device in step_stats.dev_stats:
            for node in device.node_stats:
                if " = " not in node.timeline_label:
                    continue
                kind = node.timeline_label.split(" = ", 1)[1].split("(", 1)[0]
                kind = kind.removeprefix("_MklNative").removeprefix("_Mkl").removeprefix("_")
                phase = ("backward" if node.node_name.startswith("gradients") else
                         "update" if "Apply" in kind else "forward")
                times[f"{phase} {kind}"] += node.all_end_rel_micros / 1000
    return dict(times)


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
    breakdowns = [op_table(result) for result in results if result.get("ops")]
    return "\n\n".join([machine_info(args), table, notes, *breakdowns])


def op_table(result: dict, rows: int = 12) -> str:
    """The traced step of one configuration: its costliest kinds of op and their shares of the traced time."""
    ops = result["ops"]
    total = sum(ops.values())
    ranked = sorted(ops.items(), key=lambda item: -item[1])[:rows]
    backward = sum(ms for name, ms in ops.items() if name.startswith("backward"))
    title = (f"Where one traced step's time goes: {result['arch']}, {result['precision']}, "
             f"{result['crop']}x{result['crop']} (backward pass {100 * backward / total:.0f}% of the traced op time)")
    table = markdown_table(["pass and op", "ms", "share"],
                           [[name, f"{ms:.0f}", f"{100 * ms / total:.1f}%"] for name, ms in ranked])
    return f"{title}\n\n{table}"


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

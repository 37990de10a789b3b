"""Inference latency and memory per architecture and precision, batch 1, including the resize to the image
size and the argmax (the ``labels`` output). Variants:

- ``session``: the plain variable graph (batch norm not folded), as the Predictor ran before 0.2;
- ``predictor``: the Predictor in float32, what ``inference.py``, ``evaluate_msc.py`` and ``deploy`` run
  (batch norm folded, weights loaded once into variables);
- ``frozen``: the same graph with the weights as constants (what the exports hold);
- ``bfloat16``: the Predictor in bfloat16, activations kept bfloat16 from one convolution to the next;
- ``bfloat16-convs``: bfloat16 convolutions only, cast to and from float32 around each one;
- ``xla``: the frozen float32 graph with XLA auto-clustering (``TF_XLA_FLAGS=--tf_xla_cpu_global_jit``).

Times: each architecture in its own process, its variants measured interleaved. Memory: each (architecture,
variant) in a process of its own; the working set is the peak resident memory above the process's resident
memory once TensorFlow is imported and has run a session. Without ``--checkpoint`` the weights are a random
initialisation with non-trivial batch-norm statistics, saved once and shared by every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
from common import (
    base_parser,
    machine_info,
    markdown_table,
    peak_rss_mb,
    resident_mb,
    run_workers,
    session_config,
    stats_ms,
    time_interleaved,
    write_section,
)

VARIANTS = ("session", "predictor", "frozen", "bfloat16", "bfloat16-convs", "xla")
DEFAULT_ARCHS = ("lw-refinenet-resnet50", "lw-refinenet-resnet101", "lw-refinenet-resnet152",
                 "lw-refinenet-mobilenetv2", "refinenet-resnet50", "refinenet-resnet101", "refinenet-resnet152")
NUM_CLASSES = 21


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default=",".join(DEFAULT_ARCHS), help="comma-separated architectures")
    parser.add_argument("--sizes", default="468x625", help="comma-separated HEIGHTxWIDTH")
    parser.add_argument("--variants", default="session,predictor,bfloat16",
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--memory", action="store_true", help="also measure each variant's memory in its own process")
    parser.add_argument("--checkpoint", help="weights to use (one architecture only)")
    parser.add_argument("--tag", default="", help="suffix of the section name (keeps several runs apart)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--memory-variant", help=argparse.SUPPRESS)
    parser.add_argument("--weights-dir", help=argparse.SUPPRESS)  # <dir>/<arch>/random.ckpt, made by the parent
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.variants = args.variants.split(",")
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if args.quick:
        args.sizes, args.repeats, args.warmup = "33x45", 1, 1
    args.sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    return args


def multiply_adds(description, size) -> float:
    """Convolution multiply-adds (G) of the model at ``size``."""
    import tensorflow as tf

    from refinenet_tf.models.complexity import count_multiply_adds
    from refinenet_tf.models.model import build_model

    graph = tf.Graph()
    with graph.as_default():
        build_model(tf.compat.v1.placeholder(tf.float32, [1, *size, 3]), description)
    return count_multiply_adds(graph) / 1e9


def weights(args, arch: str) -> str:
    """The checkpoint a worker measures: --checkpoint, else the random one its parent saved."""
    return args.checkpoint or os.path.join(args.weights_dir, arch, "random.ckpt")


def random_checkpoint(description, directory: str) -> str:
    """Random weights with batch-norm statistics away from 0 and 1, saved; the checkpoint prefix."""
    import tensorflow as tf

    from refinenet_tf.models.model import build_model

    v1 = tf.compat.v1
    rng = np.random.default_rng(0)
    ranges = {"gamma": (0.5, 1.5), "beta": (-0.2, 0.2), "moving_mean": (-0.2, 0.2), "moving_variance": (0.5, 1.5)}
    with tf.Graph().as_default(), v1.Session() as session:
        v1.set_random_seed(0)
        build_model(v1.placeholder(tf.float32, [1, None, None, 3]), description)
        statistics = {}  # fed to the initializers in one run (a run per variable took seconds)
        for variable in v1.global_variables():
            low_high = ranges.get(variable.op.name.rsplit("/", 1)[-1])
            if low_high:
                statistics[variable.initial_value] = rng.uniform(*low_high, variable.shape.as_list()).astype(np.float32)
        session.run(v1.global_variables_initializer(), statistics)
        return v1.train.Saver().save(session, f"{directory}/random.ckpt", write_meta_graph=False)


def make_predictor(variant: str, description, checkpoint: str, args):
    """A function running one image through ``variant``, returning its labels."""
    import tensorflow as tf

    from refinenet_tf import checkpoints
    from refinenet_tf.predict.graph import build_predictor_graph
    from refinenet_tf.predict.inference_graph import CONVOLUTIONS_ONLY, GraphPredictor, build_inference_graph
    from refinenet_tf.predict.predictor import Predictor

    v1 = tf.compat.v1
    if variant == "session":
        graph = tf.Graph()
        with graph.as_default():
            tensors = build_predictor_graph(description)
            session = v1.Session(graph=graph, config=session_config(args))
            checkpoints.restore(session, checkpoint, v1.global_variables())
        return lambda image: session.run(tensors.labels, {tensors.image: image[None]})
    if variant in ("predictor", "bfloat16"):
        predictor = Predictor(checkpoint, description, threads=args.threads,
                              precision="float32" if variant == "predictor" else "bfloat16")
        return lambda image: predictor.predict(image, ("labels",)).labels
    if variant == "bfloat16-convs":
        model = build_inference_graph(description, checkpoint, precision="bfloat16", bfloat16_ops=CONVOLUTIONS_ONLY)
    else:
        model = build_inference_graph(description, checkpoint).frozen()
    predictor = GraphPredictor(model, args.threads, args.inter_op_threads, xla=variant == "xla")
    return lambda image: predictor.predict(image, ("labels",))["labels"]


def time_worker(args) -> dict:
    """Times of every variant of one architecture at every size, and label agreement with float32."""
    from refinenet_tf.description import default_description

    description = default_description(args.worker, NUM_CLASSES)
    rows = []
    run = {variant: make_predictor(variant, description, weights(args, args.worker), args)
           for variant in args.variants}
    for size in args.sizes:
        image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
        times = time_interleaved({variant: (lambda image=image, f=function: f(image))
                                  for variant, function in run.items()}, args.repeats, args.warmup)
        reference = run[args.variants[0]](image)
        agreement = {variant: float(np.mean(function(image) == reference)) for variant, function in run.items()}
        rows.append({"size": size, "gmac": multiply_adds(description, size), "times": times,
                     "agreement": agreement})
    return {"arch": args.worker, "rows": rows}


def memory_worker(args) -> dict:
    """Working set of one variant of one architecture: peak resident memory above TensorFlow's own."""
    import tensorflow as tf

    from refinenet_tf.description import default_description

    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        session.run(tf.constant(1.0))
    baseline = resident_mb()
    description = default_description(args.worker, NUM_CLASSES)
    run = make_predictor(args.memory_variant, description, weights(args, args.worker), args)
    for _ in range(2):
        run(np.random.default_rng(0).integers(0, 256, (*args.sizes[0], 3), dtype=np.uint8))
    return {"arch": args.worker, "variant": args.memory_variant, "baseline_mb": baseline,
            "peak_mb": peak_rss_mb(), "working_set_mb": peak_rss_mb() - baseline}


def report(args, results: list[dict], memory: list[dict]) -> str:
    working_set = {(entry["arch"], entry["variant"]): entry["working_set_mb"] for entry in memory}
    rows = []
    for result in results:
        for row in result["rows"]:
            baseline = np.median(row["times"][args.variants[0]])
            for variant, times in row["times"].items():
                memory_cell = working_set.get((result["arch"], variant))
                rows.append([result["arch"], "x".join(map(str, row["size"])), f"{row['gmac']:.1f}", variant,
                             stats_ms(times), f"{baseline / np.median(times):.2f}x",
                             "" if memory_cell is None else f"{memory_cell:.0f}",
                             f"{100 * row['agreement'][variant]:.2f}%"])
    table = markdown_table(["architecture", "HxW", "GMAC", "variant", "ms median (min-max)",
                            f"speed vs {args.variants[0]}", "working set MiB (own process)",
                            f"labels equal to {args.variants[0]}"], rows)
    return machine_info(args) + "\n\n" + table


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps([memory_worker(args) if args.memory_variant else time_worker(args)]))
        return
    if "xla" in args.variants:  # read once, when TensorFlow starts: the workers inherit it
        os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "") + " --tf_xla_cpu_global_jit").strip()
    from refinenet_tf.description import default_description

    archs = args.archs.split(",")
    with tempfile.TemporaryDirectory() as directory:
        if not args.checkpoint:
            for arch in archs:
                random_checkpoint(default_description(arch, NUM_CLASSES), os.path.join(directory, arch))
        argv = [*args.argv, "--weights-dir", directory]
        results = run_workers(__file__, argv, archs)
        memory = []
        if args.memory:
            for variant in args.variants:
                memory += run_workers(__file__, [*argv, "--memory-variant", variant], archs)
    body = report(args, results, memory)
    write_section(args.output, "inference", "Inference latency and memory", body, tag=args.tag)
    print(body)


if __name__ == "__main__":
    main()

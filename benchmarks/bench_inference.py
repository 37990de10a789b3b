"""Inference latency per architecture and image size, batch 1, including the resize to the image size
and the argmax (the ``labels`` output), for these variants measured interleaved in one process:

- ``session``: the variable graph of ``refinenet_tf.evaluate.predict`` (what ``Predictor`` runs);
- ``frozen``: ``build_inference_graph`` (constants, batch norm folded), float32;
- ``bfloat16``: the same with convolutions in bfloat16;
- ``xla``: the frozen float32 graph with XLA auto-clustering (``global_jit_level=ON_1`` and
  ``TF_XLA_FLAGS=--tf_xla_cpu_global_jit``).

Each architecture runs in its own process, so its peak memory is its own. Without ``--checkpoint`` the
weights are a random initialisation (saved to a temporary checkpoint so all variants share them).
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
    run_workers,
    session_config,
    stats_ms,
    time_interleaved,
    write_section,
)

VARIANTS = ("session", "frozen", "bfloat16", "xla")
DEFAULT_ARCHS = ("lw-refinenet-resnet50", "lw-refinenet-resnet101", "lw-refinenet-resnet152",
                 "lw-refinenet-mobilenetv2", "refinenet-resnet50", "refinenet-resnet101", "refinenet-resnet152")
NUM_CLASSES = 21


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default=",".join(DEFAULT_ARCHS), help="comma-separated architectures")
    parser.add_argument("--sizes", default="468x625,512x512", help="comma-separated HEIGHTxWIDTH")
    parser.add_argument("--variants", default="session,frozen", help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--checkpoint", help="weights to use (one architecture only)")
    parser.add_argument("--tag", default="", help="suffix of the section name (keeps several runs apart)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
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


def session_variant(description, checkpoint: str | None, directory: str, config):
    """The variable graph with its weights; returns (run function, checkpoint prefix it saved or used)."""
    import tensorflow as tf

    from refinenet_tf import checkpoints
    from refinenet_tf.evaluate.predict import build_predictor_graph

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        tensors = build_predictor_graph(description)
        session = v1.Session(graph=graph, config=config)
        session.run(v1.global_variables_initializer())
        if checkpoint:
            checkpoints.restore(session, checkpoint, v1.global_variables())
        else:
            checkpoint = v1.train.Saver().save(session, f"{directory}/random.ckpt")
    return (lambda image: session.run(tensors.labels, {tensors.image: image[None]})), checkpoint


def worker(args) -> dict:
    """Measure one architecture at every size; the results as a JSON-able dict."""
    if "xla" in args.variants:  # read once, when TensorFlow starts
        os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "") + " --tf_xla_cpu_global_jit").strip()
    from refinenet_tf.description import default_description
    from refinenet_tf.inference_graph import FrozenPredictor, build_inference_graph

    description = default_description(args.worker, NUM_CLASSES)
    config = session_config(args)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        run_session, checkpoint = session_variant(description, args.checkpoint, directory, config)
        predictors = {}
        for variant in args.variants:
            if variant != "session":
                precision = "bfloat16" if variant == "bfloat16" else "float32"
                graph_def = build_inference_graph(description, checkpoint, precision)
                predictors[variant] = FrozenPredictor(graph_def, args.threads, args.inter_op_threads,
                                                      xla=variant == "xla")
        for size in args.sizes:
            image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
            functions = {variant: (lambda image=image: run_session(image)) if variant == "session"
                         else (lambda image=image, p=predictors[variant]: p.predict(image, ("labels",)))
                         for variant in args.variants}
            times = time_interleaved(functions, args.repeats, args.warmup)
            agreement = compare_outputs(predictors, image)
            rows.append({"size": size, "gmac": multiply_adds(description, size), "times": times,
                         "agreement": agreement})
    return {"arch": args.worker, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def compare_outputs(predictors: dict, image: np.ndarray) -> dict[str, str]:
    """For each non-float32 variant: logits difference and label agreement against the frozen float32."""
    if "frozen" not in predictors:
        return {}
    reference = predictors["frozen"].predict(image, ("labels", "logits"))
    span = float(np.ptp(reference["logits"])) or 1.0
    notes = {}
    for variant, predictor in predictors.items():
        if variant == "frozen":
            continue
        result = predictor.predict(image, ("labels", "logits"))
        difference = float(np.abs(result["logits"] - reference["logits"]).max())
        same = float(np.mean(result["labels"] == reference["labels"]))
        notes[variant] = f"max logit diff {difference:.3g} ({100 * difference / span:.2f}% of range), labels {100 * same:.2f}% same"
    return notes


def report(args, results: list[dict]) -> str:
    rows = []
    for result in results:
        for row in result["rows"]:
            baseline = np.median(row["times"][args.variants[0]])
            for variant, times in row["times"].items():
                rows.append([result["arch"], "x".join(map(str, row["size"])), f"{row['gmac']:.1f}", variant,
                             stats_ms(times), f"{baseline / np.median(times):.2f}x",
                             f"{result['peak_rss_mb']:.0f}", row["agreement"].get(variant, "")])
    table = markdown_table(["architecture", "HxW", "GMAC", "variant", "ms median (min-max)",
                            f"speed vs {args.variants[0]}", "peak RSS MiB (process)", "vs frozen float32"], rows)
    return machine_info(args) + "\n\n" + table


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    results = run_workers(__file__, args.argv, args.archs.split(","))
    body = report(args, results)
    write_section(args.output, "inference", "Inference latency", body, tag=args.tag)
    print(body)


if __name__ == "__main__":
    main()

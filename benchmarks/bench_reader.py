"""Reader throughput (images/s) of the tf.data pipelines alone: training batches (decode, random
scale, mirror, pad and crop) and full-size evaluation examples, from JPEG/PNG files on local disk."""

from __future__ import annotations

import tempfile

import numpy as np
from common import (
    base_parser,
    machine_info,
    markdown_table,
    peak_rss_mb,
    session_config,
    stats_ms,
    time_interleaved,
    write_sample_dataset,
    write_section,
)

NUM_CLASSES = 21
BLOCK = 10  # batches per timed call, so that prefetching cannot hide the pipeline's real rate


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=10, help="training batch (DeepLab's default)")
    parser.add_argument("--crop", type=int, default=321)
    parser.add_argument("--image-size", default="375x500", help="HEIGHTxWIDTH of the files")
    parser.add_argument("--images", type=int, default=40, help="files written (the pipelines repeat over them)")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.crop, args.image_size, args.images, args.repeats, args.warmup = 2, 33, "40x50", 4, 1, 1
    args.image_size = tuple(int(v) for v in args.image_size.split("x"))
    return args


def measure(args) -> list[list[object]]:
    """Seconds per training batch and per evaluation example, as table rows."""
    import tensorflow as tf

    from refinenet_tf.data.listfile import read_list_file
    from refinenet_tf.data.reader import eval_dataset, train_dataset
    from refinenet_tf.description import Preprocessing

    v1 = tf.compat.v1
    with tempfile.TemporaryDirectory() as directory:
        samples = read_list_file(directory, write_sample_dataset(directory, args.images, args.image_size, NUM_CLASSES))
        graph = tf.Graph()
        with graph.as_default():
            training = train_dataset(samples, Preprocessing.deeplab(), (args.crop, args.crop), args.batch_size,
                                     NUM_CLASSES, 255, random_scale=True, random_mirror=True, seed=0,
                                     num_parallel_calls=args.threads or tf.data.AUTOTUNE)
            evaluation = eval_dataset(samples, Preprocessing.deeplab(), NUM_CLASSES, 255).repeat()
            next_batch = v1.data.make_one_shot_iterator(training).get_next()
            next_example = v1.data.make_one_shot_iterator(evaluation).get_next()
            with v1.Session(graph=graph, config=session_config(args)) as session:
                times = time_interleaved({"train": lambda: [session.run(next_batch) for _ in range(BLOCK)],
                                          "eval": lambda: [session.run(next_example) for _ in range(BLOCK)]},
                                         args.repeats, args.warmup)
    height, width = args.image_size
    return [
        [f"train: batch {args.batch_size}, crop {args.crop}, scale+mirror", f"{height}x{width}",
         stats_ms(np.asarray(times["train"]) / BLOCK), f"{BLOCK * args.batch_size / np.median(times['train']):.1f}"],
        ["eval: one full-size example", f"{height}x{width}", stats_ms(np.asarray(times["eval"]) / BLOCK),
         f"{BLOCK / np.median(times['eval']):.1f}"],
    ]


def main(argv=None) -> None:
    args = parse_args(argv)
    rows = measure(args)
    table = markdown_table(["pipeline", "image size", f"ms per batch, median (min-max) over blocks of {BLOCK}",
                           "images/s"], rows)
    body = f"{machine_info(args)}\n- Peak RSS: {peak_rss_mb():.0f} MiB\n\n{table}"
    write_section(args.output, "reader", "Reader throughput", body)
    print(body)


if __name__ == "__main__":
    main()

"""Dense CRF time per image (``refinenet_tf.predict.crf.dense_crf``, DeepLab's settings, 10 iterations)."""

from __future__ import annotations

import numpy as np
from common import (
    base_parser,
    machine_info,
    markdown_table,
    peak_rss_mb,
    stats_ms,
    time_interleaved,
    write_section,
)

NUM_CLASSES = 21


def parse_args(argv=None):
    parser = base_parser(__doc__)
    parser.add_argument("--sizes", default="375x500,468x625", help="comma-separated HEIGHTxWIDTH")
    parser.add_argument("--num-classes", type=int, default=NUM_CLASSES)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.warmup = "33x45", 1, 1
    args.sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    return args


def inputs(size: tuple[int, int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random softmax map and a random image of ``size``."""
    from scipy.ndimage import zoom

    rng = np.random.default_rng(0)
    coarse = rng.normal(0, 3, (max(size[0] // 16, 2), max(size[1] // 16, 2), num_classes))
    logits = zoom(coarse, (size[0] / coarse.shape[0], size[1] / coarse.shape[1], 1), order=1)[: size[0], : size[1]]
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    return probabilities.astype(np.float32), rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def main(argv=None) -> None:
    from refinenet_tf.errors import ConfigError
    from refinenet_tf.predict.crf import dense_crf, require_pydensecrf

    args = parse_args(argv)
    try:
        require_pydensecrf()
    except ConfigError as error:
        body = f"{machine_info(args)}\n\nNot measured: {error}"
    else:
        cases = {"x".join(map(str, size)): inputs(size, args.num_classes) for size in args.sizes}
        times = time_interleaved({name: (lambda case=case: dense_crf(*case)) for name, case in cases.items()},
                                 args.repeats, args.warmup)
        rows = [[name, args.num_classes, stats_ms(seconds)] for name, seconds in times.items()]
        table = markdown_table(["HxW", "classes", "ms per image median (min-max)"], rows)
        body = (f"{machine_info(args)}\n- Peak RSS: {peak_rss_mb():.0f} MiB; one process (the CRF is "
                f"single-threaded; `--crf-workers` of evaluate runs several)\n\n{table}")
    write_section(args.output, "crf", "Dense CRF time per image", body)
    print(body)


if __name__ == "__main__":
    main()

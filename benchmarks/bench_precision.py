"""The accuracy guard of bfloat16: how much it changes a trained model's answers against float32.

- ``--demo DIR``: the demo's output folder (``python -m refinenet_tf demo``): its trained snapshot on its
  held-out scenes; label agreement and the change in mean IoU.
- ``--reference DIR``: a folder with the official Light-Weight RefineNet MobileNet-v2 weights (``mbv2.pth``)
  and input images (``input_*.png``), converted with ``convert_weights``; label agreement and the largest
  logit difference (there are no ground-truth masks).
"""

from __future__ import annotations

import glob
import os
import tempfile

import numpy as np
from common import base_parser, machine_info, markdown_table, write_section


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--demo", help="a demo output folder (snapshots/, data/, dataset/synthetic/val.txt)")
    parser.add_argument("--reference", help="folder with mbv2.pth and input_*.png")
    return parser.parse_args(argv)


def demo_row(directory: str, threads: int) -> list[str]:
    from refinenet_tf.data.listfile import read_list_file
    from refinenet_tf.description import load_description
    from refinenet_tf.evaluate.precision_check import compare_precisions

    snapshots = os.path.join(directory, "snapshots")
    samples = read_list_file(os.path.join(directory, "data"), os.path.join(directory, "dataset", "synthetic", "val.txt"))
    result = compare_precisions(snapshots, samples, load_description(snapshots), threads)
    return [f"demo checkpoint, {result.images} held-out scenes", f"{100 * result.label_agreement:.2f}%",
            f"{100 * result.mean_iou_float32:.2f}", f"{100 * result.mean_iou_bfloat16:.2f}",
            f"{result.mean_iou_change_points:+.2f}", ""]


def reference_row(directory: str, threads: int) -> list[str]:
    from refinenet_tf.data.images import load_image
    from refinenet_tf.predict.predictor import Predictor
    from refinenet_tf.weights.convert import convert_weights

    with tempfile.TemporaryDirectory() as converted:
        convert_weights(os.path.join(directory, "mbv2.pth"), "lw-refinenet", "lw-refinenet-mobilenetv2", 21,
                        converted)
        images = [load_image(path) for path in sorted(glob.glob(os.path.join(directory, "input_*.png")))]
        with Predictor(converted, threads=threads) as float32, \
                Predictor(converted, threads=threads, precision="bfloat16") as bfloat16:
            same = total = 0
            differences = []
            for image in images:
                a, b = float32.predict(image), bfloat16.predict(image)
                same += int(np.count_nonzero(a.labels == b.labels))
                total += a.labels.size
                differences.append(float(np.abs(a.logits_os - b.logits_os).max() / np.ptp(a.logits_os)))
    return [f"official LW MobileNet-v2 (converted), {len(images)} images", f"{100 * same / total:.2f}%", "", "",
            "", f"{100 * max(differences):.2f}% of the logit range"]


def main(argv=None) -> None:
    args = parse_args(argv)
    rows = []
    if args.demo:
        rows.append(demo_row(args.demo, args.threads))
    if args.reference:
        rows.append(reference_row(args.reference, args.threads))
    if not rows:
        raise SystemExit("give --demo DIR and/or --reference DIR")
    table = markdown_table(["model and images", "labels equal to float32", "mIoU float32", "mIoU bfloat16",
                            "change (points)", "largest logit difference"], rows)
    body = machine_info(args, timed=False) + "\n\n" + table
    write_section(args.output, "precision", "bfloat16 accuracy guard", body)
    print(body)


if __name__ == "__main__":
    main()

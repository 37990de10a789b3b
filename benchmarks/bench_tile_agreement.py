"""Tiled against whole-image labels of a trained model: the demo's checkpoint on mosaics of its held-out scenes.

The demo's scenes are 64x64, too small to tile in a useful way, so ``--grid`` x ``--grid`` of them are put side by
side into one image (256x256 by default) and predicted whole and in windows of each ``--tiles`` size. The share
of pixels whose labels agree is what ``--tile`` changes for a user whose images fit whole.
"""

from __future__ import annotations

import glob
import os

import numpy as np
from common import base_parser, machine_info, markdown_table, write_section


def parse_args(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--demo", required=True, help="a demo output folder (snapshots/, data/validation/images/)")
    parser.add_argument("--grid", type=int, default=4, help="scenes per side of a mosaic")
    parser.add_argument("--tiles", default="128x128:0.25,96x96:0.5,64x64:0.25",
                        help="comma-separated HEIGHTxWIDTH:OVERLAP")
    return parser.parse_args(argv)


def mosaics(scenes: list[np.ndarray], grid: int) -> list[np.ndarray]:
    """The scenes laid out ``grid`` x ``grid`` per image, as many whole mosaics as there are scenes for."""
    per_mosaic = grid * grid
    return [np.concatenate([np.concatenate(scenes[first + row * grid:first + (row + 1) * grid], axis=1)
                            for row in range(grid)], axis=0)
            for first in range(0, len(scenes) - per_mosaic + 1, per_mosaic)]


def main(argv=None) -> None:
    args = parse_args(argv)
    from PIL import Image

    from refinenet_tf import RefineNet

    paths = sorted(glob.glob(os.path.join(args.demo, "data", "validation", "images", "*.png")))
    images = mosaics([np.asarray(Image.open(path).convert("RGB")) for path in paths], args.grid)
    if not images:
        raise SystemExit(f"{args.demo}: fewer than {args.grid ** 2} held-out scenes in data/validation/images")
    rows = []
    with RefineNet(model=os.path.join(args.demo, "snapshots"), threads=args.threads) as model:
        whole = [model.deploy(image=image) for image in images]
        for setting in args.tiles.split(","):
            size, overlap = setting.split(":")
            tile = tuple(int(value) for value in size.split("x"))
            same = sum(int(np.sum(model.deploy(image=image, tile=tile, tile_overlap=float(overlap)) == labels))
                       for image, labels in zip(images, whole, strict=True))
            pixels = sum(labels.size for labels in whole)
            rows.append([f"{tile[0]}x{tile[1]}", overlap, f"{len(images)} x {images[0].shape[0]}x{images[0].shape[1]}",
                         f"{100 * same / pixels:.2f}%"])
    table = markdown_table(["tile", "overlap", "mosaics", "labels equal to whole-image prediction"], rows)
    body = machine_info(args, timed=False) + f"\n- Checkpoint: {args.demo}/snapshots (the demo's)\n\n" + table
    write_section(args.output, "tile-agreement", "Tiled against whole-image labels (demo checkpoint)", body)
    print(body)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()

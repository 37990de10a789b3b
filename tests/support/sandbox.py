"""A folder holding, in miniature, everything the README's commands name: a PASCAL VOC tree with palette masks,
image and mask folders, RGB masks with their class_dict.csv, DeepLab checkpoints, a Light-Weight RefineNet
weight file, and the project's debug list and image."""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from refinenet_tf.data.class_table import ClassTable, write_class_table
from refinenet_tf.data.masks import index_to_colour, save_palette_mask
from tests.support.toy_data import render
from tests.support.weight_files import write_torch_state_dict

REPO = Path(__file__).resolve().parents[2]
VOC_IDS = {"train": ("2007_000032", "2007_000039"), "val": ("2007_000033", "2007_000042")}
SIZE = (48, 64)
RGB_TABLE = ClassTable(("background", "square", "disc"), ((0, 0, 0), (220, 40, 40), (40, 70, 220)))


def make_readme_sandbox(root: Path, deeplab_checkpoint: str) -> Path:
    """Fill ``root`` with the README's inputs, ``deeplab_checkpoint``'s files linked under DeepLab's two names;
    returns ``root``."""
    rng = np.random.default_rng(0)
    voc = root / "VOCdevkit" / "VOC2012"
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    for folder in ("JPEGImages", "SegmentationClass", "images", "masks", "rgb_masks"):
        (voc / folder if folder[0].isupper() else root / folder).mkdir(parents=True, exist_ok=True)
    for split, ids in VOC_IDS.items():
        (sets / f"{split}.txt").write_text("".join(f"{image_id}\n" for image_id in ids))
        for image_id in ids:
            image, mask = render(rng, SIZE)
            mask[0, :4] = 255  # VOC's void border
            Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95)
            save_palette_mask(str(voc / "SegmentationClass" / f"{image_id}.png"), mask)
    for index in range(3):
        image, mask = render(rng, SIZE)
        Image.fromarray(image).save(root / "images" / f"scene{index}.png")
        save_palette_mask(str(root / "masks" / f"scene{index}.png"), mask)
        Image.fromarray(index_to_colour(mask, RGB_TABLE)).save(root / "rgb_masks" / f"scene{index}.png")
    write_class_table(str(root / "class_dict.csv"), RGB_TABLE)
    source = Path(deeplab_checkpoint)
    for file in source.parent.glob(glob.escape(source.name) + ".*"):
        for name in ("deeplab_resnet_init.ckpt", "deeplab_resnet.ckpt"):
            (root / file.name.replace(source.name, name)).symlink_to(file)
    write_torch_state_dict(str(root / "rf_lw50_voc.pth"), "lw-refinenet-resnet50", 21, legacy=True)
    shutil.copytree(REPO / "misc", root / "misc")
    (root / "dataset").mkdir()
    shutil.copy(REPO / "dataset" / "debug.txt", root / "dataset" / "debug.txt")
    return root

"""A folder holding, in miniature, everything the README's commands name: a PASCAL VOC tree with palette masks,
image and mask folders, RGB masks with their class_dict.csv, LabelMe annotations, DeepLab checkpoints, a
Light-Weight RefineNet weight file, and the project's debug list and image."""

from __future__ import annotations

import base64
import glob
import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

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
    _write_labelme_folder(root / "annotations", rng)
    _write_coco_files(root / "coco", rng)
    source = Path(deeplab_checkpoint)
    for file in source.parent.glob(glob.escape(source.name) + ".*"):
        for name in ("deeplab_resnet_init.ckpt", "deeplab_resnet.ckpt"):
            (root / file.name.replace(source.name, name)).symlink_to(file)
    write_torch_state_dict(str(root / "rf_lw50_voc.pth"), "lw-refinenet-resnet50", 21, legacy=True)
    shutil.copytree(REPO / "misc", root / "misc")
    (root / "dataset").mkdir()
    shutil.copy(REPO / "dataset" / "debug.txt", root / "dataset" / "debug.txt")
    return root


def _write_labelme_folder(folder: Path, rng: np.random.Generator, count: int = 4) -> None:
    """LabelMe 5 files (a rectangle 'square' and a circle 'disc' each, the image beside them and embedded)."""
    folder.mkdir()
    height, width = SIZE
    for index in range(count):
        x, y = (float(v) for v in rng.integers(4, 24, 2))
        cx, cy = float(rng.integers(36, 56)), float(rng.integers(16, 32))
        image = Image.new("RGB", (width, height), (120, 120, 120))
        draw = ImageDraw.Draw(image)
        draw.rectangle([x, y, x + 14, y + 14], fill=(220, 40, 40))
        draw.ellipse([cx - 7, cy - 7, cx + 7, cy + 7], fill=(40, 70, 220))
        image.save(folder / f"shot{index}.png")
        shapes = [{"label": "square", "points": [[x, y], [x + 14, y + 14]], "shape_type": "rectangle"},
                  {"label": "disc", "points": [[cx, cy], [cx + 7, cy]], "shape_type": "circle"}]
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        record = {"version": "5.4.1", "flags": {},
                  "shapes": [{**shape, "group_id": None, "description": "", "flags": {}} for shape in shapes],
                  "imagePath": f"shot{index}.png", "imageData": base64.b64encode(buffer.getvalue()).decode("ascii"),
                  "imageHeight": height, "imageWidth": width}
        (folder / f"shot{index}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")


def _write_coco_files(folder: Path, rng: np.random.Generator, count: int = 3) -> None:
    """A COCO instances file (a polygon 'square' and a polygon 'disc' per image) and its images."""
    (folder / "images").mkdir(parents=True)
    height, width = SIZE
    images, annotations = [], []
    for index in range(count):
        x, y = (float(v) for v in rng.integers(4, 24, 2))
        cx, cy = float(rng.integers(36, 56)), float(rng.integers(16, 32))
        disc = [(cx + 7 * np.cos(a), cy + 7 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
        image = Image.new("RGB", (width, height), (120, 120, 120))
        draw = ImageDraw.Draw(image)
        draw.rectangle([x, y, x + 14, y + 14], fill=(220, 40, 40))
        draw.polygon(disc, fill=(40, 70, 220))
        image.save(folder / "images" / f"{index:012d}.jpg", quality=95)
        images.append({"id": index + 1, "file_name": f"{index:012d}.jpg", "height": height, "width": width})
        for category, points in ((1, [(x, y), (x + 14, y), (x + 14, y + 14), (x, y + 14)]), (2, disc)):
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": category,
                                "segmentation": [[round(float(v), 2) for point in points for v in point]],
                                "area": 0.0, "bbox": [0, 0, 0, 0], "iscrowd": 0})
    categories = [{"id": 1, "name": "square", "supercategory": "shape"},
                  {"id": 2, "name": "disc", "supercategory": "shape"}]
    (folder / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": categories}), encoding="utf-8")

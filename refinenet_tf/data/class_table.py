"""Class tables: class names and colours, read from and written to ``class_dict.csv``.

Two header forms are read:

* ``name,r,g,b`` (Semantic Segmentation Suite): one class per row, class index = position among the
  class rows. A black (0,0,0) row whose name marks it as void (:data:`VOID_NAMES`: void, ignore,
  ignored, unlabeled, unlabelled, unknown, none, don't care / dontcare; case, ``_`` and ``-`` do not
  matter) is not a class: it marks pixels to ignore, does not take an index, and is logged at INFO.
  A black row with any other name (``background``) is a class like the others.
* ``index,name,r,g,b``: explicit indices 0..C-1 in order; every row is a class, black ones too.
  Written when black is a class (VOC's background).

Everywhere, black pixels mean "ignore" unless black is one of the classes.

Index and palette masks without a table get one inferred from them (:func:`infer_class_table`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from refinenet_tf.data.images import open_image
from refinenet_tf.errors import DataError, parameter
from refinenet_tf.files import write_text_atomically
from refinenet_tf.palette import voc_palette
from refinenet_tf.progress import Progress

Colour = tuple[int, int, int]
BLACK: Colour = (0, 0, 0)
FILE_NAME = "class_dict.csv"
VOC_VOID_INDEX = 255  # the border index of VOC's palette masks
NAMED_HEADER = ("name", "r", "g", "b")
INDEXED_HEADER = ("index", "name", "r", "g", "b")
# Names that make a black row of a name,r,g,b table the ignore colour (compared by is_void_name).
VOID_NAMES = frozenset({"void", "ignore", "ignored", "unlabeled", "unlabelled", "unknown", "none",
                        "don't care", "dont care", "dontcare"})

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassTable:
    """Class names and their RGB colours, in class-index order."""

    names: tuple[str, ...]
    colours: tuple[Colour, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "colours", tuple(tuple(int(v) for v in c) for c in self.colours))
        if len(self.names) != len(self.colours):
            raise DataError(f"class table: {len(self.names)} names but {len(self.colours)} colours")
        if not self.names:
            raise DataError("class table: no classes")
        for colour in self.colours:
            if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
                raise DataError(f"class table: {colour} is not an RGB colour in 0..255")
        _refuse_duplicates(self.names, "class name")
        _refuse_duplicates(self.colours, "colour")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def void_colour(self) -> Colour | None:
        """The colour painted on ignored pixels: black, unless black is a class."""
        return None if BLACK in self.colours else BLACK


def read_class_table(path: str) -> ClassTable:
    """Read a ``class_dict.csv`` (either header form); errors name the file and line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{path}: class table not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the class table ({error})") from None
    numbered = [(number, row) for number, row in enumerate(rows, start=1) if any(field.strip() for field in row)]
    if not numbered:
        raise DataError(f"{path}: empty class table (expected a header 'name,r,g,b')")
    header_line, header = numbered[0]
    header = tuple(field.strip().lower() for field in header)
    if header not in (NAMED_HEADER, INDEXED_HEADER):
        raise DataError(f"{path}:{header_line}: expected the header 'name,r,g,b' or 'index,name,r,g,b', got {','.join(header)!r}")
    indexed = header == INDEXED_HEADER
    names: list[str] = []
    colours: list[Colour] = []
    void_name: str | None = None  # the first black row taken as the ignore colour
    for line, row in numbered[1:]:
        where = f"{path}:{line}"
        if len(row) != len(header):
            raise DataError(f"{where}: expected {len(header)} fields ({','.join(header)}), got {len(row)}")
        fields = [field.strip() for field in row]
        if indexed:
            index = _integer(fields.pop(0), "index", where)
            if index != len(names):
                raise DataError(f"{where}: expected index {len(names)}, got {index} (indices must count up from 0)")
        name = fields[0]
        if not name:
            raise DataError(f"{where}: empty class name")
        colour = tuple(_integer(value, channel, where) for value, channel in zip(fields[1:], "rgb", strict=True))
        if not all(0 <= v <= 255 for v in colour):
            raise DataError(f"{where}: colour {colour} is outside 0..255")
        if colour == BLACK and not indexed and is_void_name(name):
            if BLACK in colours:
                raise DataError(f"{where}: {name!r} (0,0,0) would mark pixels to ignore, but (0,0,0) is already "
                                f"class {names[colours.index(BLACK)]!r}; keep one of the two rows")
            _LOG.info("%s: %r (0,0,0) marks pixels to ignore, not a class", where, name)
            void_name = void_name or name
            continue
        if colour == BLACK and void_name is not None:
            raise DataError(f"{where}: class {name!r} is (0,0,0), which the {void_name!r} row above marks as "
                            "ignored; keep one of the two rows")
        if name in names:
            raise DataError(f"{where}: class name {name!r} appears twice")
        if colour in colours:
            raise DataError(f"{where}: colour {colour} is already used by class {names[colours.index(colour)]!r}")
        names.append(name)
        colours.append(colour)
    if not names:
        raise DataError(f"{path}: the class table lists no classes (only void rows)")
    return ClassTable(tuple(names), tuple(colours))


def is_void_name(name: str) -> bool:
    """Whether a black row called ``name`` marks pixels to ignore (see :data:`VOID_NAMES`)."""
    return re.sub(r"[\s_-]+", " ", name.lower()).strip() in VOID_NAMES


def write_class_table(path: str, table: ClassTable) -> str:
    """Write ``table`` as a ``class_dict.csv`` that :func:`read_class_table` reads back identically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if table.void_colour is None:
        writer.writerow(INDEXED_HEADER)
        writer.writerows((i, name, *colour) for i, (name, colour) in enumerate(zip(table.names, table.colours, strict=True)))
    else:
        writer.writerow(NAMED_HEADER)
        writer.writerow(("void", *BLACK))
        writer.writerows((name, *colour) for name, colour in zip(table.names, table.colours, strict=True))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text_atomically(path, buffer.getvalue())
    return path


# Cityscapes: the 19 classes used for training and their colours (cityscapesScripts' labels.py).
CITYSCAPES_TRAIN_CLASSES: tuple[tuple[str, Colour], ...] = (
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
)

# Cityscapes labelId of each train id 0..18 (every other labelId is ignored in training).
CITYSCAPES_LABEL_IDS_OF_TRAIN_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
# Cityscapes' label names -> label ids, as its polygon files name them (cityscapesScripts' labels.py); the licence
# plate has no id of its own (-1) and is not painted.
CITYSCAPES_LABEL_IDS = {
    "unlabeled": 0, "ego vehicle": 1, "rectification border": 2, "out of roi": 3, "static": 4, "dynamic": 5,
    "ground": 6, "road": 7, "sidewalk": 8, "parking": 9, "rail track": 10, "building": 11, "wall": 12, "fence": 13,
    "guard rail": 14, "bridge": 15, "tunnel": 16, "pole": 17, "polegroup": 18, "traffic light": 19,
    "traffic sign": 20, "vegetation": 21, "terrain": 22, "sky": 23, "person": 24, "rider": 25, "car": 26,
    "truck": 27, "bus": 28, "caravan": 29, "trailer": 30, "train": 31, "motorcycle": 32, "bicycle": 33,
    "license plate": -1,
}

# ADE20K's 150 scene-parsing classes (ADEChallengeData2016), each by the first name of objectInfo150.txt; its masks
# number them 1..150 and mark everything else 0 ("other")
ADE20K_CLASS_NAMES = tuple(name.replace("_", " ") for name in """
wall building sky floor tree ceiling road bed windowpane grass cabinet sidewalk person earth door table mountain plant
curtain chair car water painting sofa shelf house sea mirror rug field armchair seat fence desk rock wardrobe lamp
bathtub railing cushion base box column signboard chest_of_drawers counter sand sink skyscraper fireplace refrigerator
grandstand path stairs runway case pool_table pillow screen_door stairway river bridge bookcase blind coffee_table
toilet flower book hill bench countertop stove palm kitchen_island computer swivel_chair boat bar arcade_machine hovel
bus towel light truck tower chandelier awning streetlight booth television_receiver airplane dirt_track apparel pole
land bannister escalator ottoman bottle buffet poster stage van ship fountain conveyer_belt canopy washer plaything
swimming_pool stool barrel basket waterfall tent bag minibike cradle oven ball food step tank trade_name microwave pot
animal bicycle lake dishwasher screen blanket sculpture hood sconce vase traffic_light tray ashcan fan pier crt_screen
plate monitor bulletin_board shower radiator glass clock flag""".split())

VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def cityscapes_table() -> ClassTable:
    """Cityscapes' 19 training classes."""
    return ClassTable(tuple(n for n, _ in CITYSCAPES_TRAIN_CLASSES), tuple(c for _, c in CITYSCAPES_TRAIN_CLASSES))


def voc_table() -> ClassTable:
    """PASCAL VOC's 21 classes in the VOC palette (background is black, so it is a class here)."""
    colours = voc_palette(len(VOC_CLASS_NAMES))
    return ClassTable(VOC_CLASS_NAMES, colours)


def ade20k_table() -> ClassTable:
    """ADE20K's 150 classes, indexed 0..149 (its mask values less one), in the VOC palette's colours after black."""
    return ClassTable(ADE20K_CLASS_NAMES, voc_palette(len(ADE20K_CLASS_NAMES) + 1)[1:])


def table_with_background(names: Sequence[str]) -> ClassTable:
    """``background`` as class 0 and ``names`` after it, in the VOC palette's colours (background black): the table
    of labels read from annotation files that do not give one."""
    names = ("background", *names)
    return ClassTable(names, voc_palette(len(names)))


def binary_table() -> ClassTable:
    """Two classes, for masks of background (0) and foreground (anything else): black and white."""
    return ClassTable(("background", "foreground"), ((0, 0, 0), (255, 255, 255)))


def _integer(text: str, what: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{where}: {what} must be an integer, got {text!r}") from None


def _refuse_duplicates(values, what: str) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise DataError(f"class table: {what} {value!r} appears twice")
        seen.add(value)


# --- a table inferred from index or palette masks ------------------------------------------------------

def infer_class_table(masks: Sequence[str], mask_format: str, table: ClassTable | None, ignore_label: int,
                      workers: int = 1, progress: TextIO | None = None) -> ClassTable:
    """``table`` once the class indices in the index or palette ``masks`` are checked against it, else a table
    made from the masks: classes 0..(highest index present, ``ignore_label`` aside), named ``class_<i>``, coloured
    by the masks' palette (palette masks) or the VOC palette (index masks). ``workers`` threads read the masks,
    with a progress line on ``progress``."""
    ignored = {ignore_label} | ({VOC_VOID_INDEX} if mask_format == "palette" else set())
    values, palettes = _mask_values(masks, mask_format, workers, progress)
    classes = sorted(set(values) - ignored)
    if not classes:
        raise DataError(f"{os.path.dirname(masks[0])}: the masks hold only ignored pixels "
                        f"(values {sorted(values)}), no class index")
    top = classes[-1]
    if top > ignore_label:
        raise DataError(f"{values[top]}: holds class index {top}, above the ignore label {ignore_label} "
                        f"(class indices must be below {parameter('ignore_label')})")
    if table is not None:
        if top >= table.num_classes:
            raise DataError(f"{values[top]}: holds class index {top} but the class table lists "
                            f"{table.num_classes} classes ({', '.join(table.names[:5])}"
                            f"{', ...' if table.num_classes > 5 else ''})")
        return table
    voc = [tuple(int(v) for v in c) for c in voc_palette(top + 1)]
    wanted: list[Colour | None] = voc if mask_format == "index" else [
        _palette_colour(palettes.get(values.get(index, masks[0])), index) for index in range(top + 1)]
    colours = _distinct_colours(wanted, set(classes), os.path.dirname(masks[0]))
    _LOG.info("%s: %d classes (highest index %d); class_dict.csv names them class_<i>, coloured by the %s",
             os.path.dirname(masks[0]), top + 1, top, "masks' palette" if mask_format == "palette" else "VOC palette")
    return ClassTable(tuple(f"class_{i}" for i in range(top + 1)), tuple(colours))


def _mask_values(masks: Sequence[str], mask_format: str, workers: int,
                 progress: TextIO | None) -> tuple[dict[int, str], dict[str, list[Colour]]]:
    """Each value in the masks -> the first mask holding it, and each palette mask's palette colours."""

    modes = ("L",) if mask_format == "index" else ("P", "L")
    what = "an index mask (8-bit grey)" if mask_format == "index" else "a palette mask (8-bit palette or grey)"
    hints = {"P": f"; palette masks need {parameter('format')} palette", "RGB": f"; colour masks need {parameter('format')} rgb"}

    def read(path: str) -> tuple[str, np.ndarray, list[Colour] | None]:
        image = open_image(path)
        if image.mode not in modes:
            raise DataError(f"{path}: a {image.mode} image, not {what}{hints.get(image.mode, '')}")
        palette = image.getpalette() if image.mode == "P" else None
        colours = None if palette is None else [tuple(palette[i:i + 3]) for i in range(0, len(palette) - 2, 3)]
        return path, np.flatnonzero(np.bincount(np.asarray(image).ravel(), minlength=256)), colours

    values: dict[int, str] = {}
    palettes: dict[str, list[Colour]] = {}  # kept for the first mask holding some value
    bar = Progress(len(masks), "reading class indices", unit="files", stream=progress, silent=progress is None)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, present, colours in pool.map(read, masks):
            new = [value for value in present.tolist() if value not in values]
            values.update((value, path) for value in new)
            if new and colours is not None:
                palettes[path] = colours
            bar.update()
    bar.close()
    return values, palettes


def _palette_colour(palette: list[Colour] | None, index: int) -> Colour | None:
    return palette[index] if palette is not None and index < len(palette) else None


def _distinct_colours(wanted: list[Colour | None], present: set[int], where: str) -> list[Colour]:
    """Class i gets ``wanted[i]`` unless another class has it (classes present first); else a spare VOC colour."""
    owner: dict[Colour, int] = {}
    for index in sorted(present) + [i for i in range(len(wanted)) if i not in present]:
        colour = wanted[index]
        if colour is None:
            continue
        if colour not in owner:
            owner[colour] = index
        elif index in present:
            _LOG.warning("%s: the palette gives class %d the colour %s of class %d; class_dict.csv gives class %d "
                        "another colour", where, index, colour, owner[colour], index)
    chosen = {index: colour for colour, index in owner.items()}
    spare = (colour for colour in (tuple(int(v) for v in c) for c in voc_palette(256)) if colour not in owner)
    return [chosen[index] if index in chosen else next(spare) for index in range(len(wanted))]

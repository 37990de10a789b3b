"""Data set layouts -> converted index masks, DeepLab list files and a class table, in one call.

Each ``prepare_*`` function converts masks into a new folder (inputs are never touched), writes
``<lists_dir>/<name>/{train,val,...}.txt`` with lines ``/image /mask`` relative to the data set's
``data_dir`` and ``<lists_dir>/<name>/class_dict.csv``, and returns what it wrote, including files it
could not pair (they are logged too, never silently dropped).

Every layout writes a class table. Palette and index masks without a given table get one made from
the masks: classes 0..(highest index present, the ignore label aside), named ``class_<i>``, coloured
by the masks' palette (palette PNGs) or the VOC palette (index masks).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from refinenet_tf.data.class_table import FILE_NAME as CLASS_DICT
from refinenet_tf.data.class_table import ClassTable, Colour, read_class_table, voc_table, write_class_table
from refinenet_tf.data.images import image_files
from refinenet_tf.data.masks import (
    VOC_VOID_INDEX,
    MaskConverter,
    Progress,
    convert_mask_files,
    open_image,
)
from refinenet_tf.defaults import IGNORE_LABEL
from refinenet_tf.errors import ConfigError, DataError, parameter
from refinenet_tf.files import write_text_atomically
from refinenet_tf.palette import voc_palette

LAYOUTS = ("class-dict", "voc", "cityscapes", "folders")
# class_dict layout folder -> list name
CLASS_DICT_SPLITS = {"training": "train", "validation": "val", "testing": "test"}
# suffixes that mask files often add to their image's stem (CamVid's "_L", ...)
MASK_STEM_SUFFIXES = ("_L", "_mask", "_label", "_labels", "_gt")
MASK_FOLDER_NAMES = ("labels", "masks", "annotations")
VOC_SPLITS = ("train", "val", "trainval")
CITYSCAPES_SPLITS = ("train", "val", "test")

log = logging.getLogger(__name__)
Pair = tuple[str, str | None]


@dataclass
class PreparedDataset:
    """What a ``prepare_*`` call wrote: pass ``data_dir`` as --data-dir and a list as --data-list."""

    name: str
    data_dir: str
    lists: dict[str, str]
    class_dict: str | None
    table: ClassTable | None
    counts: dict[str, int] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


@dataclass
class Pairing:
    """Images and masks matched by file stem, and the files left without a partner."""

    pairs: list[tuple[str, str]]
    unmatched_images: list[str]
    unmatched_masks: list[str]

    @property
    def unmatched(self) -> list[str]:
        return sorted(self.unmatched_images + self.unmatched_masks)


@dataclass(frozen=True)
class ConversionOptions:
    """How masks are converted: ignore label, unknown-colour policy, threads and where progress goes (None: nowhere)."""

    ignore_label: int = IGNORE_LABEL
    unknown: str = "error"
    workers: int = 1
    progress: TextIO | None = field(default_factory=lambda: sys.stderr)


# --- pairing -------------------------------------------------------------------------------------------

def pair_by_stem(images: Sequence[str], masks: Sequence[str]) -> Pairing:
    """Pair images and masks whose file names agree without extension (a mask may add ``_L``, ``_mask``...)."""
    image_by_stem = _by_stem(images, "image")
    mask_by_stem = _by_stem(masks, "mask")
    pairs: list[tuple[str, str]] = []
    paired_masks: set[str] = set()
    for stem, image in sorted(image_by_stem.items()):
        candidates = [stem] + [stem + suffix for suffix in MASK_STEM_SUFFIXES]
        mask = next((mask_by_stem[c] for c in candidates if c in mask_by_stem), None)
        if mask is not None:
            pairs.append((image, mask))
            paired_masks.add(mask)
    unmatched_images = sorted(set(images) - {image for image, _ in pairs})
    unmatched_masks = sorted(set(masks) - paired_masks)
    return Pairing(pairs, unmatched_images, unmatched_masks)


# --- layouts -------------------------------------------------------------------------------------------

def detect_layout(path: str) -> str:
    """Which layout of :data:`LAYOUTS` the folder ``path`` holds; a DataError says what was expected."""
    if not os.path.isdir(path):
        raise DataError(f"{path}: not a folder")
    if os.path.isfile(os.path.join(path, CLASS_DICT)) and any(
            os.path.isdir(os.path.join(path, folder)) for folder in CLASS_DICT_SPLITS):
        return "class-dict"
    if _find_voc_root(path) is not None:
        return "voc"
    if os.path.isdir(os.path.join(path, "leftImg8bit")) and os.path.isdir(os.path.join(path, "gtFine")):
        return "cityscapes"
    if os.path.isdir(os.path.join(path, "images")) and _mask_folder(path) is not None:
        return "folders"
    raise DataError(
        f"{path}: not a known data set layout; expected class_dict.csv + training|validation|testing/"
        "{images,labels}, VOC2012 (ImageSets/Segmentation, JPEGImages), Cityscapes (leftImg8bit, gtFine) "
        f"or images/ + one of {'|'.join(MASK_FOLDER_NAMES)}/"
    )


def prepare_dataset(path: str, name: str | None = None, lists_dir: str = "dataset", output_dir: str | None = None,
                    options: ConversionOptions | None = None) -> PreparedDataset:
    """Detect the layout of ``path`` and prepare it with the matching ``prepare_*`` function."""
    options = options or ConversionOptions()
    layout = detect_layout(path)
    if layout == "class-dict":
        return prepare_class_dict_dataset(path, name, lists_dir, output_dir, options)
    if layout == "voc":
        return prepare_voc_dataset(path, name or "voc", lists_dir, output_dir=output_dir, options=options)
    if layout == "cityscapes":
        return prepare_cityscapes_dataset(path, name or "cityscapes", lists_dir, output_dir, options)
    table_path = os.path.join(path, CLASS_DICT)
    table = read_class_table(table_path) if os.path.isfile(table_path) else None
    return prepare_folder_dataset(os.path.join(path, "images"), _mask_folder(path), name or _base_name(path),
                                  lists_dir, table=table, output_dir=output_dir, options=options)


def prepare_class_dict_dataset(root: str, name: str | None = None, lists_dir: str = "dataset",
                               output_dir: str | None = None,
                               options: ConversionOptions | None = None) -> PreparedDataset:
    """``root/class_dict.csv`` + ``root/{training,validation,testing}/{images,labels}`` (RGB masks).

    Masks are converted into ``output_dir`` (default ``root/labels_index``), one subfolder per split.
    A split without labels gets an image-only list.
    """
    options = options or ConversionOptions()
    table = read_class_table(os.path.join(root, CLASS_DICT))
    output_dir = output_dir or os.path.join(root, "labels_index")
    converter = MaskConverter("rgb", table, options.ignore_label, options.unknown)
    splits: dict[str, list[Pair]] = {}
    jobs: list[tuple[str, str]] = []
    unmatched: list[str] = []
    for folder, split in CLASS_DICT_SPLITS.items():
        images = image_files(os.path.join(root, folder, "images"))
        masks = image_files(os.path.join(root, folder, "labels"))
        if not images and not masks:
            continue
        if not masks:
            splits[split] = [(image, None) for image in images]
            continue
        pairing = pair_by_stem(images, masks)
        unmatched += pairing.unmatched
        outputs = [os.path.join(output_dir, folder, _stem(image) + ".png") for image, _ in pairing.pairs]
        jobs += [(mask, output) for (_, mask), output in zip(pairing.pairs, outputs, strict=True)]
        splits[split] = [(image, output) for (image, _), output in zip(pairing.pairs, outputs, strict=True)]
    if not splits:
        raise DataError(f"{root}: no images under {'|'.join(CLASS_DICT_SPLITS)}/images")
    _refuse_output_inside_inputs(output_dir, [os.path.join(root, f, "labels") for f in CLASS_DICT_SPLITS])
    convert_mask_files(jobs, converter, options.workers, options.progress)
    return _finish(name or _base_name(root), lists_dir, splits, table, unmatched)


def prepare_voc_dataset(path: str, name: str = "voc", lists_dir: str = "dataset", masks: str = "auto",
                        output_dir: str | None = None,
                        options: ConversionOptions | None = None) -> PreparedDataset:
    """PASCAL VOC 2012 (``path`` is VOC2012, VOCdevkit or their parent); lists for the ImageSets splits.

    ``masks``: ``class`` converts the palette PNGs of SegmentationClass into SegmentationClassIndex;
    ``aug`` uses SegmentationClassAug (converted likewise if it holds palette PNGs) and adds
    ``train_aug`` (every Aug mask not in val: DeepLab's 10582 training images); ``auto`` picks ``aug``
    when that folder exists.
    """
    options = options or ConversionOptions()
    voc = _find_voc_root(path)
    if voc is None:
        raise DataError(f"{path}: no VOC2012 folder with ImageSets/Segmentation found")
    if masks == "auto":
        masks = "aug" if os.path.isdir(os.path.join(voc, "SegmentationClassAug")) else "class"
    if masks not in ("class", "aug"):
        raise ConfigError(f"VOC masks must be 'auto', 'class' or 'aug', got {masks!r}")
    source = os.path.join(voc, "SegmentationClassAug" if masks == "aug" else "SegmentationClass")
    if not os.path.isdir(source):
        raise DataError(f"{source}: mask folder not found")
    ids = {split: _read_ids(os.path.join(voc, "ImageSets", "Segmentation", f"{split}.txt")) for split in VOC_SPLITS}
    ids = {split: values for split, values in ids.items() if values is not None}
    if masks == "aug":
        val = set(ids.get("val", []))
        ids["train_aug"] = sorted(_stem(mask) for mask in image_files(source) if _stem(mask) not in val)
    needs_conversion = masks == "class" or _first_mask_mode(source) != "L"
    target = (output_dir or source + "Index") if needs_conversion else source
    if needs_conversion:
        _refuse_output_inside_inputs(target, [source])
    splits: dict[str, list[Pair]] = {}
    unmatched: set[str] = set()
    jobs: dict[str, str] = {}
    for split, split_ids in ids.items():
        pairs: list[Pair] = []
        for image_id in split_ids:
            image = os.path.join(voc, "JPEGImages", image_id + ".jpg")
            mask = os.path.join(source, image_id + ".png")
            missing = [p for p in (image, mask) if not os.path.isfile(p)]
            if missing:
                unmatched.update(missing)
                continue
            output = os.path.join(target, image_id + ".png")
            jobs[mask] = output
            pairs.append((image, output))
        splits[split] = pairs
    if needs_conversion:
        converter = MaskConverter("palette", None, options.ignore_label, options.unknown)
        convert_mask_files(sorted(jobs.items()), converter, options.workers, options.progress)
    return _finish(name, lists_dir, splits, voc_table(), sorted(unmatched))


def prepare_cityscapes_dataset(root: str, name: str = "cityscapes", lists_dir: str = "dataset",
                               output_dir: str | None = None,
                               options: ConversionOptions | None = None) -> PreparedDataset:
    """Cityscapes fine annotations: labelIds -> train ids in ``output_dir`` (default ``root/gtFine_trainIds``).

    The test split's public masks are placeholders, so ``test.txt`` lists images only.
    """
    options = options or ConversionOptions()
    output_dir = output_dir or os.path.join(root, "gtFine_trainIds")
    _refuse_output_inside_inputs(output_dir, [os.path.join(root, "gtFine"), os.path.join(root, "leftImg8bit")])
    converter = MaskConverter("cityscapes", None, options.ignore_label, options.unknown)
    splits: dict[str, list[Pair]] = {}
    jobs: list[tuple[str, str]] = []
    unmatched: list[str] = []
    for split in CITYSCAPES_SPLITS:
        images = _cityscapes_files(os.path.join(root, "leftImg8bit", split), "_leftImg8bit.png")
        if split == "test":
            if images:
                splits[split] = [(image, None) for image in sorted(images.values())]
            continue
        labels = _cityscapes_files(os.path.join(root, "gtFine", split), "_gtFine_labelIds.png")
        unmatched += sorted(images[key] for key in images.keys() - labels.keys())
        unmatched += sorted(labels[key] for key in labels.keys() - images.keys())
        pairs: list[Pair] = []
        for key in sorted(images.keys() & labels.keys()):
            output = os.path.join(output_dir, split, key + "_gtFine_trainIds.png")
            jobs.append((labels[key], output))
            pairs.append((images[key], output))
        if pairs:
            splits[split] = pairs
    if not splits:
        raise DataError(f"{root}: no Cityscapes images under leftImg8bit/{{{','.join(CITYSCAPES_SPLITS)}}}")
    convert_mask_files(jobs, converter, options.workers, options.progress)
    return _finish(name, lists_dir, splits, converter.classes(), unmatched)


def prepare_folder_dataset(images_dir: str, masks_dir: str, name: str, lists_dir: str = "dataset",
                           mask_format: str = "auto", table: ClassTable | None = None,
                           output_dir: str | None = None, val_fraction: float = 0.0, seed: int = 1234,
                           options: ConversionOptions | None = None) -> PreparedDataset:
    """Two folders of images and masks paired by stem -> ``train.txt`` (and ``val.txt`` for ``val_fraction``).

    ``mask_format``: ``index`` (used as they are), ``rgb`` (needs ``table``), ``palette``, ``cityscapes``,
    or ``auto`` (grey masks are index masks, palette PNGs palette masks, colour masks rgb).
    Converted masks go to ``output_dir`` (default: ``<masks_dir>_index`` beside the masks folder).
    Index and palette masks are read for the class indices they hold: ``table`` (if given) must list
    them all, else a table is made from them (see the module docstring).
    """
    options = options or ConversionOptions()
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    pairing = pair_by_stem(image_files(images_dir), image_files(masks_dir))
    if not pairing.pairs:
        raise DataError(f"{images_dir}, {masks_dir}: no image and mask share a file stem")
    if mask_format == "auto":
        mask_format = _guess_mask_format(pairing.pairs[0][1], table)
    if mask_format in ("index", "palette"):
        table = _check_or_make_table([mask for _, mask in pairing.pairs], mask_format, table, options)
    if mask_format == "index":
        pairs = list(pairing.pairs)
    else:
        target = output_dir or os.path.normpath(masks_dir) + "_index"
        _refuse_output_inside_inputs(target, [masks_dir])
        converter = MaskConverter(mask_format, table, options.ignore_label, options.unknown)
        outputs = [os.path.join(target, _stem(image) + ".png") for image, _ in pairing.pairs]
        convert_mask_files([(mask, out) for (_, mask), out in zip(pairing.pairs, outputs, strict=True)],
                           converter, options.workers, options.progress)
        pairs = [(image, out) for (image, _), out in zip(pairing.pairs, outputs, strict=True)]
        table = converter.classes()
    order = np.random.default_rng(seed).permutation(len(pairs))
    num_val = int(round(val_fraction * len(pairs)))
    val = sorted(pairs[i] for i in order[:num_val])
    splits = {"train": sorted(pairs[i] for i in order[num_val:])}
    if val:
        splits["val"] = val
    return _finish(name, lists_dir, splits, table, pairing.unmatched)


def _check_or_make_table(masks: Sequence[str], mask_format: str, table: ClassTable | None,
                         options: ConversionOptions) -> ClassTable:
    """``table`` once the masks' class indices are checked against it, else a table made from the masks."""
    ignored = {options.ignore_label} | ({VOC_VOID_INDEX} if mask_format == "palette" else set())
    values, palettes = _mask_values(masks, mask_format, options)
    classes = sorted(set(values) - ignored)
    if not classes:
        raise DataError(f"{os.path.dirname(masks[0])}: the masks hold only ignored pixels "
                        f"(values {sorted(values)}), no class index")
    top = classes[-1]
    if top > options.ignore_label:
        raise DataError(f"{values[top]}: holds class index {top}, above the ignore label {options.ignore_label} "
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
    log.info("%s: %d classes (highest index %d); class_dict.csv names them class_<i>, coloured by the %s",
             os.path.dirname(masks[0]), top + 1, top, "masks' palette" if mask_format == "palette" else "VOC palette")
    return ClassTable(tuple(f"class_{i}" for i in range(top + 1)), tuple(colours))


def _mask_values(masks: Sequence[str], mask_format: str,
                 options: ConversionOptions) -> tuple[dict[int, str], dict[str, list[Colour]]]:
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
    bar = Progress(len(masks), "reading class indices", options.progress)
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        for path, present, colours in pool.map(read, masks):
            new = [value for value in present.tolist() if value not in values]
            values.update((value, path) for value in new)
            if new and colours is not None:
                palettes[path] = colours
            bar.advance()
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
            log.warning("%s: the palette gives class %d the colour %s of class %d; class_dict.csv gives class %d "
                        "another colour", where, index, colour, owner[colour], index)
    chosen = {index: colour for colour, index in owner.items()}
    spare = (colour for colour in (tuple(int(v) for v in c) for c in voc_palette(256)) if colour not in owner)
    return [chosen[index] if index in chosen else next(spare) for index in range(len(wanted))]


# --- list writing --------------------------------------------------------------------------------------

def write_list(path: str, pairs: Sequence[Pair], data_dir: str) -> str:
    """Write DeepLab list lines ``/image /mask`` (or ``/image``) relative to ``data_dir``."""
    lines = [" ".join(_relative(p, data_dir) for p in pair if p is not None) for pair in pairs]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text_atomically(path, "".join(line + "\n" for line in lines))
    return path


def _finish(name: str, lists_dir: str, splits: dict[str, list[Pair]], table: ClassTable | None,
            unmatched: list[str]) -> PreparedDataset:
    """Write the lists and class table, log the outcome and the unmatched files."""
    files = [path for pairs in splits.values() for pair in pairs for path in pair if path is not None]
    if not files:
        raise DataError(f"data set {name!r}: no image could be listed (unmatched: {len(unmatched)} files)")
    data_dir = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    folder = os.path.join(lists_dir, name)
    lists = {split: write_list(os.path.join(folder, f"{split}.txt"), pairs, data_dir) for split, pairs in splits.items()}
    class_dict = write_class_table(os.path.join(folder, CLASS_DICT), table) if table is not None else None
    for path in unmatched:
        log.warning("unmatched (no image or mask partner, not listed): %s", path)
    counts = {split: len(pairs) for split, pairs in splits.items()}
    log.info("%s: wrote %s in %s; use --data-dir %s%s", name,
             ", ".join(f"{split}.txt ({count})" for split, count in counts.items()), folder, data_dir,
             f"; {len(unmatched)} unmatched files" if unmatched else "")
    return PreparedDataset(name, data_dir, lists, class_dict, table, counts, list(unmatched))


# --- helpers -------------------------------------------------------------------------------------------

def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _base_name(path: str) -> str:
    return os.path.basename(os.path.normpath(os.path.abspath(path)))


def _by_stem(paths: Sequence[str], what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in paths:
        stem = _stem(path)
        if stem in found:
            raise DataError(f"{path}: two {what} files share the stem {stem!r} (also {found[stem]}); cannot pair by name")
        found[stem] = path
    return found


def _relative(path: str, data_dir: str) -> str:
    relative = "/" + os.path.relpath(os.path.abspath(path), data_dir).replace(os.sep, "/")
    if any(character.isspace() for character in relative):
        raise DataError(f"{path}: list files separate fields by spaces, so paths cannot contain whitespace")
    return relative


def _refuse_output_inside_inputs(output_dir: str, inputs: Sequence[str]) -> None:
    output = os.path.realpath(output_dir)
    for folder in inputs:
        folder = os.path.realpath(folder)
        if os.path.commonpath([output, folder]) == folder:
            raise ConfigError(f"{output_dir}: the output folder must not be the input folder {folder} or inside it")


def _find_voc_root(path: str) -> str | None:
    for candidate in (path, os.path.join(path, "VOC2012"), os.path.join(path, "VOCdevkit", "VOC2012")):
        if os.path.isdir(os.path.join(candidate, "ImageSets", "Segmentation")):
            return candidate
    return None


def _read_ids(path: str) -> list[str] | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return [line.split()[0] for line in handle if line.strip()]


def _first_mask_mode(folder: str) -> str:
    masks = image_files(folder)
    if not masks:
        raise DataError(f"{folder}: no mask files")
    return open_image(masks[0]).mode


def _guess_mask_format(mask: str, table: ClassTable | None) -> str:
    mode = open_image(mask).mode
    if mode == "L":
        return "index"
    if mode == "P":
        return "palette"
    if table is not None:
        return "rgb"
    raise DataError(f"{mask}: a {mode} colour mask; colour masks need a class table (class_dict.csv)")


def _mask_folder(path: str) -> str | None:
    return next((os.path.join(path, name) for name in MASK_FOLDER_NAMES if os.path.isdir(os.path.join(path, name))), None)


def _cityscapes_files(folder: str, suffix: str) -> dict[str, str]:
    """``city/prefix`` -> path for every ``folder/<city>/<prefix><suffix>``."""
    found: dict[str, str] = {}
    if not os.path.isdir(folder):
        return found
    for city in sorted(os.listdir(folder)):
        city_folder = os.path.join(folder, city)
        if os.path.isdir(city_folder):
            for file_name in os.listdir(city_folder):
                if file_name.endswith(suffix):
                    found[f"{city}/{file_name[: -len(suffix)]}"] = os.path.join(city_folder, file_name)
    return found

"""``convert_masks.py``: masks -> single-channel index PNGs, or a whole data set -> index masks + list files.

Two modes:

* convert files: ``convert_masks.py MASKS... --format rgb --class-dict class_dict.csv --output-dir OUT``
  (folders are searched recursively; their structure is kept under OUT);
* prepare a data set: ``convert_masks.py --layout auto ROOT`` (or ``--layout folders IMAGES MASKS``)
  converts its masks into a new folder and writes ``dataset/<name>/{train,val,...}.txt`` plus
  ``dataset/<name>/class_dict.csv`` (every layout writes one); it prints the ``--data-dir`` to train with.

Inputs are never overwritten: the output folder must differ from (and not lie inside) the input folders.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from refinenet_tf.cli import flags
from refinenet_tf.data.class_table import ClassTable, read_class_table
from refinenet_tf.data.layouts import (
    LAYOUTS,
    ConversionOptions,
    PreparedDataset,
    detect_layout,
    prepare_ade20k_dataset,
    prepare_cityscapes_dataset,
    prepare_class_dict_dataset,
    prepare_coco_dataset,
    prepare_cvat_dataset,
    prepare_dataset,
    prepare_folder_dataset,
    prepare_labelme_dataset,
    prepare_voc_dataset,
)
from refinenet_tf.data.masks import MASK_FORMATS, UNKNOWN_POLICIES, MaskConverter, convert_mask_files
from refinenet_tf.defaults import IGNORE_LABEL, RANDOM_SEED
from refinenet_tf.errors import ConfigError, DataError

_LOG = logging.getLogger(__name__)
CITYSCAPES_SUFFIX = ("_labelIds.png", "_trainIds.png")


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser(
        "convert_masks.py", __doc__.replace("``", ""),
        epilog=(
            "examples:\n"
            "  convert_masks.py labels/ --format rgb --class-dict class_dict.csv --output-dir labels_index\n"
            "  convert_masks.py VOC2012/SegmentationClass --format palette --output-dir VOC2012/SegmentationClassIndex\n"
            "  convert_masks.py masks_0_255/ --format binary --output-dir masks_0_1\n"
            "  convert_masks.py --layout auto path/to/CamVid        (class_dict.csv + training/validation/...)\n"
            "  convert_masks.py --layout voc path/to/VOCdevkit --voc-masks class\n"
            "  convert_masks.py --layout cityscapes path/to/cityscapes --workers 4\n"
            "  convert_masks.py --layout folders images/ masks/ --name mydata --val-fraction 0.1\n"
            "  convert_masks.py --layout labelme annotations/ --name mydata --val-fraction 0.1\n"
            "  convert_masks.py --layout coco annotations/instances_train2017.json train2017/ --name coco\n"
            "  convert_masks.py --layout cvat path/to/cvat_export      (labelmap.txt + SegmentationClass/)\n"
            "  convert_masks.py --layout ade20k path/to/ADEChallengeData2016"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+",
                        help="mask files or folders; with --layout: the data set folder (folders: IMAGES MASKS; coco: "
                             "ANNOTATIONS.json IMAGES)")
    parser.add_argument("--format", choices=[*MASK_FORMATS, "index"], default=None,
                        help="mask format: rgb (colour masks, needs --class-dict), palette (palette PNGs, VOC), "
                             "cityscapes (*_labelIds.png -> 19 train ids), binary (0 = background, any other value "
                             "= foreground: 0/255, 0/1 or 1-bit masks), ade20k (0 'other' -> ignore, 1..150 -> "
                             "0..149); 'index' (already index masks) and "
                             "the default 'guess from the first mask' only apply to --layout folders")
    parser.add_argument("--class-dict", default=None,
                        help="class_dict.csv (header name,r,g,b or index,name,r,g,b): needed for rgb masks; with "
                             "--layout folders it is also the table for palette and index masks (default: class_0 up to "
                             "the highest index found, in the masks' palette colours, or VOC's for index masks); with "
                             "--layout labelme or coco the classes by name (default: background and the labels or categories found)")
    parser.add_argument("--ignore-label", type=int, default=IGNORE_LABEL,
                        help=f"label for void and ignored pixels (default {IGNORE_LABEL})")
    parser.add_argument("--unknown", choices=UNKNOWN_POLICIES, default="error",
                        help="colours (or LabelMe labels) missing from the class table: report them and stop "
                             "(error, default) or map them to the ignore label (ignore)")
    parser.add_argument("--output-dir", default=None,
                        help="where index masks go; required without --layout (layouts have a default new folder)")
    parser.add_argument("--workers", type=int, default=1, help="files converted in parallel (threads)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    layout = parser.add_argument_group("data set layouts (--layout)")
    layout.add_argument("--layout", choices=["auto", *LAYOUTS], default=None,
                        help="prepare a whole data set: convert its masks and write list files")
    layout.add_argument("--name", default=None, help="data set name: lists go to LISTS_DIR/NAME/ (default: folder name)")
    layout.add_argument("--lists-dir", default="dataset", help="folder for the list files (default ./dataset)")
    layout.add_argument("--voc-masks", choices=["auto", "class", "aug"], default="auto",
                        help="VOC: SegmentationClass (class) or SegmentationClassAug (aug, adds train_aug.txt); "
                             "auto uses Aug when present")
    layout.add_argument("--val-fraction", type=float, default=0.0,
                        help="folders, labelme and coco layouts: share of pairs held out in val.txt (default 0)")
    layout.add_argument("--random-seed", type=int, default=RANDOM_SEED,
                        help="folders, labelme and coco layouts: seed of the train/val split (default %(default)s)")
    flags.add_alias(layout, "--seed", "--random-seed", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    options = ConversionOptions(args.ignore_label, args.unknown, args.workers, None if args.quiet else sys.stderr)
    if args.layout is not None:
        report(prepare_layout(args, options))
        return
    if args.format in (None, "index"):
        raise ConfigError("converting masks needs --format rgb, palette or cityscapes (index masks need no conversion)")
    if args.output_dir is None:
        raise ConfigError("--output-dir is required (converted masks never replace their inputs)")
    table = given_table(args)
    converter = MaskConverter(args.format, table, args.ignore_label, args.unknown)
    jobs = plan_jobs(args.inputs, args.output_dir, args.format)
    result = convert_mask_files(jobs, converter, args.workers, options.progress)
    _LOG.info("wrote %d index masks to %s", len(result.written), args.output_dir)


def plan_jobs(inputs: Sequence[str], output_dir: str, mask_format: str) -> list[tuple[str, str]]:
    """(source, destination) per mask: files named directly go to OUTPUT/name.png, folders keep their tree."""
    suffix = CITYSCAPES_SUFFIX[0] if mask_format == "cityscapes" else ".png"
    output = os.path.realpath(output_dir)
    jobs: list[tuple[str, str]] = []
    for path in inputs:
        if os.path.isdir(path):
            folder = os.path.realpath(path)
            if os.path.commonpath([output, folder]) == folder:
                raise ConfigError(f"--output-dir {output_dir} must not be the input folder {path} or inside it")
            for directory, _, names in os.walk(path):
                jobs += [(os.path.join(directory, name), _destination(output_dir, os.path.relpath(os.path.join(directory, name), path), mask_format))
                         for name in sorted(names) if name.endswith(suffix)]
        elif os.path.isfile(path):
            if os.path.realpath(os.path.dirname(os.path.abspath(path))) == output:
                raise ConfigError(f"--output-dir {output_dir} is the folder of the input {path}; choose another")
            jobs.append((path, _destination(output_dir, os.path.basename(path), mask_format)))
        else:
            raise DataError(f"{path}: no such file or folder")
    if not jobs:
        raise DataError(f"no {suffix} masks found in {', '.join(inputs)}")
    return sorted(jobs)


def prepare_layout(args: argparse.Namespace, options: ConversionOptions) -> PreparedDataset:
    """Run the ``prepare_*`` function of ``--layout`` on the positional folder(s)."""
    layout = args.layout
    if layout == "coco":
        if len(args.inputs) != 2:
            raise ConfigError("--layout coco takes the instances file and the images folder: ANNOTATIONS.json IMAGES")
        annotations, images = args.inputs
        table = given_table(args)
        return prepare_coco_dataset(annotations, images, args.name, args.lists_dir, args.output_dir, table,
                                    args.val_fraction, args.random_seed, options)
    if layout == "folders":
        if len(args.inputs) != 2:
            raise ConfigError("--layout folders takes two folders: IMAGES MASKS")
        images, masks = args.inputs
        table = given_table(args)
        return prepare_folder_dataset(images, masks, args.name or os.path.basename(os.path.normpath(os.path.abspath(masks))),
                                      args.lists_dir, args.format or "auto", table, args.output_dir,
                                      args.val_fraction, args.random_seed, options)
    if len(args.inputs) != 1:
        raise ConfigError(f"--layout {layout} takes one data set folder, got {len(args.inputs)} paths")
    root = args.inputs[0]
    if layout == "auto":
        layout = detect_layout(root)
        _LOG.info("%s: detected the %s layout", root, layout)
        if layout == "folders":
            return prepare_dataset(root, args.name, args.lists_dir, args.output_dir, options)
    if layout == "class-dict":
        return prepare_class_dict_dataset(root, args.name, args.lists_dir, args.output_dir, options)
    if layout == "voc":
        return prepare_voc_dataset(root, args.name or "voc", args.lists_dir, args.voc_masks, args.output_dir, options)
    if layout == "cvat":
        return prepare_cvat_dataset(root, args.name, args.lists_dir, args.output_dir, options)
    if layout == "ade20k":
        return prepare_ade20k_dataset(root, args.name or "ade20k", args.lists_dir, args.output_dir, options)
    if layout == "labelme":
        table = given_table(args)
        return prepare_labelme_dataset(root, args.name, args.lists_dir, args.output_dir, table, args.val_fraction,
                                       args.random_seed, options)
    return prepare_cityscapes_dataset(root, args.name or "cityscapes", args.lists_dir, args.output_dir, options)


def given_table(args: argparse.Namespace) -> ClassTable | None:
    """The ``--class-dict`` table, when one is given."""
    return read_class_table(args.class_dict) if args.class_dict else None


def report(dataset: PreparedDataset) -> None:
    """Print what was written and how to train on it."""
    print(f"data set {dataset.name}: --data-dir {dataset.data_dir}")
    for split, path in dataset.lists.items():
        print(f"  {split}: --data-list {path} ({dataset.counts[split]} lines)")
    if dataset.class_dict:
        print(f"  classes: {dataset.class_dict} ({dataset.table.num_classes} classes)")
    if dataset.unmatched:
        print(f"  {len(dataset.unmatched)} unmatched files were not listed (see the warnings above)")


def _destination(output_dir: str, relative: str, mask_format: str) -> str:
    if mask_format == "cityscapes" and relative.endswith(CITYSCAPES_SUFFIX[0]):
        relative = relative[: -len(CITYSCAPES_SUFFIX[0])] + CITYSCAPES_SUFFIX[1]
    return os.path.join(output_dir, os.path.splitext(relative)[0] + ".png")

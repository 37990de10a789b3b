"""The built-in demo: procedural scenes -> mask conversion -> training -> held-out evaluation -> pictures.

Everything is written under one output folder:

* ``data/``: the generated scenes (``training|validation/{images,labels}``, colour masks, ``class_dict.csv``)
  and ``data/labels_index/``, the masks converted to class indices;
* ``dataset/synthetic/{train,val}.txt``: DeepLab list files (``--data-dir`` is ``data/``);
* ``demo_settings.json``: the recipe; a folder is only reused by a run with the same settings;
* ``snapshots/``: checkpoints and ``model.json`` (an interrupted demo resumes from here when run again);
* ``predictions/``: ``<stem>.png`` index and ``<stem>_colour.png`` predictions of the validation images;
* ``results.json``: scores and confusion matrix; ``comparison.png``: image | ground truth | prediction;
* ``report/index.html``: the evaluation as a web page (with matplotlib installed, the ``[report]`` extra).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from PIL import Image, ImageDraw

from refinenet_tf.data.class_table import ClassTable
from refinenet_tf.data.layouts import ConversionOptions, PreparedDataset, prepare_class_dict_dataset
from refinenet_tf.data.listfile import Sample, read_list_file
from refinenet_tf.data.synthetic import make_synthetic_dataset
from refinenet_tf.defaults import REPORT_IMAGES
from refinenet_tf.description import ModelDescription, default_description
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.evaluate.job import EvaluationJob, run_evaluation_job
from refinenet_tf.evaluate.plots import INSTALL_HINT, has_matplotlib
from refinenet_tf.evaluate.report import format_results
from refinenet_tf.files import write_text_atomically
from refinenet_tf.palette import colourise
from refinenet_tf.predict.graph import SINGLE_SCALE
from refinenet_tf.predict.outputs import image_stem
from refinenet_tf.train.trainer import TrainConfig, Trainer, TrainResult

ARCH = "lw-refinenet-mobilenetv2"
DATASET_NAME = "synthetic"
DEFAULT_OUTPUT_DIR = "demo_output"
SEED = 1234
COMPARISON_FILE = "comparison.png"
RESULTS_FILE = "results.json"
SETTINGS_FILE = "demo_settings.json"
REPORT_FOLDER = "report"
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSettings:
    """Data set size and training recipe of one demo run (the defaults are the measured full demo)."""

    num_steps: int = 1200
    random_seed: int = SEED
    threads: int | None = None
    num_train: int = 500
    num_val: int = 50
    image_size: tuple[int, int] = (64, 64)
    batch_size: int = 8
    learning_rate: float = 1e-3
    comparison_rows: int = 4

    @classmethod
    def full(cls, random_seed: int = SEED, threads: int | None = None, num_steps: int | None = None) -> DemoSettings:
        """The full demo: a few minutes on two cores."""
        return cls(num_steps=cls.num_steps if num_steps is None else num_steps, random_seed=random_seed,
                   threads=threads)

    @classmethod
    def quick(cls, random_seed: int = SEED, threads: int | None = None, num_steps: int | None = None) -> DemoSettings:
        """A few seconds' worth: tiny images, few steps (for tests; the scores mean nothing)."""
        return cls(num_steps=4 if num_steps is None else num_steps, random_seed=random_seed, threads=threads,
                   num_train=8, num_val=5,
                   image_size=(64, 64), batch_size=2, comparison_rows=3)

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ConfigError(f"{parameter('num_steps')} must be at least 1, got {self.num_steps}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"{parameter('threads')} must be at least 1, got {self.threads}")
        if self.num_val < 1 or self.comparison_rows < 1:
            raise ConfigError("the demo needs at least one validation image and one comparison row")


def run_demo(output_dir: str = DEFAULT_OUTPUT_DIR, num_steps: int | None = None, random_seed: int = SEED,
             threads: int | None = None, quick: bool = False, publish_picture: str | None = None,
             stream: TextIO | None = None) -> dict:
    """Run the demo (``quick``: the tiny test version) under ``output_dir``; returns the results dict.

    ``num_steps`` overrides the number of training steps; ``publish_picture`` also copies comparison.png there.
    """
    choose = DemoSettings.quick if quick else DemoSettings.full
    settings = choose(random_seed, threads, num_steps)
    return run_demo_with(output_dir, settings, publish_picture, stream)


def run_demo_with(output_dir: str, settings: DemoSettings, publish_picture: str | None = None,
                  stream: TextIO | None = None) -> dict:
    """Run the whole demo with any recipe; results also go to results.json, the report to ``stream`` (stdout)."""
    stream = stream or sys.stdout
    paths = DemoPaths(output_dir)
    _claim_output_dir(paths, settings)
    report = has_matplotlib()
    if not report:
        _LOG.warning("no HTML report without matplotlib: %s", INSTALL_HINT)
    prepared = _prepare_data(paths, settings)
    description = _description(prepared.table)
    trained = _train(paths, settings, prepared, description)
    samples = read_list_file(prepared.data_dir, prepared.lists["val"])
    job = EvaluationJob(SINGLE_SCALE, threads=settings.threads, save_dir=paths.predictions,
                        results_file=paths.results, report=paths.report if report else None,
                        report_images=REPORT_IMAGES,
                        metadata={"arch": ARCH, "steps": trained.step, "train_images": prepared.counts["train"],
                                  "val_images": len(samples), "settings": dataclasses.asdict(settings)})
    evaluation, results = run_evaluation_job(trained.snapshot, samples, description, prepared.lists["val"], job)
    write_comparison(paths.comparison, samples[: settings.comparison_rows], paths.predictions, description)
    if publish_picture:
        _copy(paths.comparison, publish_picture)
    scores = evaluation.plain
    print(format_results(scores, description.names()), file=stream)
    print(f"held-out mIoU: {100 * scores.mean_iou:.2f}%  pixel accuracy: {100 * scores.pixel_accuracy:.2f}%  "
          f"({evaluation.images} validation images, {trained.step} training steps)", file=stream)
    print(f"written: {paths.results}, {paths.comparison}"
          + (f" (copied to {publish_picture})" if publish_picture else "")
          + (f", {os.path.join(paths.report, 'index.html')}" if report else ""), file=stream)
    print(f"predictions in {paths.predictions}, checkpoint {evaluation.checkpoint}, data in {paths.data}",
          file=stream)
    return results


def _claim_output_dir(paths: DemoPaths, settings: DemoSettings) -> None:
    """Record the settings in the output folder; refuse a folder whose snapshots came from other settings."""
    recipe = {key: value for key, value in dataclasses.asdict(settings).items() if key != "threads"}
    wanted = json.dumps(recipe, sort_keys=True)
    if os.path.isfile(paths.settings):
        with open(paths.settings, encoding="utf-8") as handle:
            if handle.read().strip() != wanted:
                raise ConfigError(f"{paths.settings}: this folder holds a demo run with other settings; "
                                  f"use another {parameter('output_dir')} or delete it")
    os.makedirs(paths.root, exist_ok=True)
    write_text_atomically(paths.settings, wanted + "\n")


def _prepare_data(paths: DemoPaths, settings: DemoSettings) -> PreparedDataset:
    """Generate the scenes (colour masks + class_dict.csv), convert the masks and write the list files."""
    _LOG.info("generating %d training and %d validation scenes in %s", settings.num_train, settings.num_val,
              paths.data)
    make_synthetic_dataset(paths.data, settings.num_train, settings.num_val, settings.image_size, settings.random_seed)
    return prepare_class_dict_dataset(paths.data, DATASET_NAME, paths.lists, paths.index_masks,
                                      ConversionOptions(workers=settings.threads or 1, progress=None))


def _description(table: ClassTable, arch: str = ARCH) -> ModelDescription:
    return default_description(arch, table.num_classes, class_names=list(table.names),
                               colours=[list(colour) for colour in table.colours])


def _train(paths: DemoPaths, settings: DemoSettings, prepared: PreparedDataset,
           description: ModelDescription) -> TrainResult:
    """Train from random weights (resuming an interrupted run in the same folder); no dropout in a short run."""
    config = TrainConfig(
        description=description, data_dir=prepared.data_dir, data_list=prepared.lists["train"],
        snapshot_dir=paths.snapshots, batch_size=settings.batch_size, input_size=settings.image_size,
        optimizer="adam", learning_rate=settings.learning_rate, decoder_lr_mult=1.0, train_batch_norm=True,
        batch_norm_decay=0.9, weight_decay=1e-5, random_mirror=True, dropout=False, num_steps=settings.num_steps,
        save_pred_every=settings.num_steps, save_num_images=0, random_seed=settings.random_seed, threads=settings.threads,
        log_every=max(settings.num_steps // 20, 1))
    trained = Trainer(config).run()
    if trained.snapshot is None or trained.stopped:
        raise ConfigError("training stopped before the last step; run the same command again to resume")
    return trained


def _copy(source: str, target: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        shutil.copyfile(source, target)
    except OSError as error:
        raise ConfigError(f"{target}: cannot copy the comparison picture there ({error.strerror or error})") from None


class DemoPaths:
    """Where the demo puts each of its outputs inside ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.data = os.path.join(root, "data")
        self.index_masks = os.path.join(self.data, "labels_index")
        self.lists = os.path.join(root, "dataset")
        self.snapshots = os.path.join(root, "snapshots")
        self.predictions = os.path.join(root, "predictions")
        self.results = os.path.join(root, RESULTS_FILE)
        self.comparison = os.path.join(root, COMPARISON_FILE)
        self.settings = os.path.join(root, SETTINGS_FILE)
        self.report = os.path.join(root, REPORT_FOLDER)


# --- the comparison picture ------------------------------------------------------------------------------

PANEL_SIDE = 192  # each panel is scaled (nearest) so its longer side has this many pixels
MARGIN = 6
CAPTION_HEIGHT = 16
SWATCH = 12
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
COLUMNS = ("image", "ground truth", "prediction")


def write_comparison(path: str, samples: list[Sample], predictions_dir: str, description: ModelDescription) -> None:
    """A grid, one validation image per row: image | ground truth | prediction, with a class legend below."""
    palette = description.palette()
    rows = [[_load_rgb(sample.image_path),
             colourise(_load_index(sample.mask_path), palette),
             colourise(_load_index(os.path.join(predictions_dir, image_stem(sample.image_path) + ".png")), palette)]
            for sample in samples]
    rows = [[_scaled(panel) for panel in row] for row in rows]
    panel_height = max(panel.height for row in rows for panel in row)
    panel_width = max(panel.width for row in rows for panel in row)
    grid_width = MARGIN + len(COLUMNS) * (panel_width + MARGIN)
    legend = _legend(description.names(), palette, grid_width)
    grid_height = CAPTION_HEIGHT + MARGIN + len(rows) * (panel_height + MARGIN)
    canvas = Image.new("RGB", (grid_width, grid_height + legend.height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(COLUMNS):
        draw.text((MARGIN + column * (panel_width + MARGIN), MARGIN // 2), title, fill=TEXT)
    for row_number, row in enumerate(rows):
        top = CAPTION_HEIGHT + MARGIN + row_number * (panel_height + MARGIN)
        for column, panel in enumerate(row):
            canvas.paste(panel, (MARGIN + column * (panel_width + MARGIN), top))
    canvas.paste(legend, (0, grid_height))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    canvas.save(path, format="PNG")


def _legend(names: list[str], palette: np.ndarray, width: int) -> Image.Image:
    """Colour swatches with class names, wrapped into lines of ``width`` pixels."""
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    entries = [(name, tuple(int(v) for v in colour), SWATCH + 4 + int(scratch.textlength(name)) + 2 * MARGIN)
               for name, colour in zip(names, palette, strict=True)]
    lines: list[list[tuple[str, tuple, int]]] = [[]]
    for entry in entries:
        if lines[-1] and MARGIN + sum(e[2] for e in lines[-1]) + entry[2] > width:
            lines.append([])
        lines[-1].append(entry)
    line_height = SWATCH + MARGIN
    legend = Image.new("RGB", (width, MARGIN + len(lines) * line_height), BACKGROUND)
    draw = ImageDraw.Draw(legend)
    for line_number, line in enumerate(lines):
        x, y = MARGIN, line_number * line_height
        for name, colour, entry_width in line:
            draw.rectangle((x, y, x + SWATCH - 1, y + SWATCH - 1), fill=colour, outline=TEXT)
            draw.text((x + SWATCH + 4, y), name, fill=TEXT)
            x += entry_width
    return legend


def _scaled(panel: np.ndarray) -> Image.Image:
    image = Image.fromarray(panel)
    factor = PANEL_SIDE / max(image.size)
    return image.resize((max(round(image.width * factor), 1), max(round(image.height * factor), 1)), Image.NEAREST)


def _load_rgb(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _load_index(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)

"""``RefineNet``: train, segment, evaluate and export a model from Python in a few calls.

It is a thin layer over the functions the commands use (:class:`~refinenet_tf.train.trainer.Trainer`,
:class:`~refinenet_tf.predict.predictor.Predictor`, :func:`~refinenet_tf.evaluate.evaluator.evaluate`,
:func:`~refinenet_tf.export.export_model`); every instance keeps its own graphs and sessions, so
several models can live in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from refinenet_tf import checkpoints
from refinenet_tf.architectures import ARCHITECTURES, check_arch
from refinenet_tf.data.class_table import FILE_NAME as CLASS_DICT
from refinenet_tf.data.class_table import ClassTable, read_class_table
from refinenet_tf.data.images import checked_bands, load_model_image
from refinenet_tf.data.layouts import prepare_dataset
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.defaults import (
    CALIBRATION_IMAGES,
    DEFAULT_ARCH,
    NUM_CLASSES,
    REPORT_IMAGES,
    SNAPSHOT_DIR,
    TILE_OVERLAP,
)
from refinenet_tf.description import (
    ModelDescription,
    Preprocessing,
    default_description,
    has_description,
    load_description,
)
from refinenet_tf.errors import CheckpointError, ConfigError, DataError
from refinenet_tf.evaluate.job import EvaluationJob, run_evaluation_job
from refinenet_tf.export import BFLOAT16_FORMATS, export_model
from refinenet_tf.hardware import choose_precision
from refinenet_tf.palette import colourise
from refinenet_tf.predict.decision import LabelRule
from refinenet_tf.predict.graph import PredictOptions
from refinenet_tf.predict.inference_graph import checked_rgb
from refinenet_tf.predict.int8 import is_quantized, require_onnxruntime
from refinenet_tf.predict.predictor import Predictor
from refinenet_tf.predict.segment import labels_of
from refinenet_tf.predict.tiling import check_overlap, check_tile_setting
from refinenet_tf.train.trainer import TrainConfig, Trainer, TrainResult

MODEL_TYPES = ("refinenet", "lightweight")
BACKBONES = ("resnet", "mobilenetv2")
NUM_LAYERS = (50, 101, 152)
_DEFAULT_SPEC = check_arch(DEFAULT_ARCH)
DEFAULTS = {"model_type": _DEFAULT_SPEC.decoder, "backbone": _DEFAULT_SPEC.backbone,
            "num_layers": _DEFAULT_SPEC.depth, "num_classes": NUM_CLASSES}
TRAIN_SPLITS = ("train_aug", "train", "trainval")  # the first a prepared data set has is used
EVAL_SPLITS = ("val", "test")
LISTS_FOLDER = "lists"
# TrainConfig fields that RefineNet.train sets itself
_MANAGED_TRAIN_FIELDS = ("description", "data_dir", "data_list", "snapshot_dir")


def arch_name(model_type: str, backbone: str, num_layers: int | None) -> str:
    """The registry name for a (model_type, backbone, num_layers) choice, checked (ConfigError)."""
    _check_choice("model_type", model_type, MODEL_TYPES)
    _check_choice("backbone", backbone, BACKBONES)
    if backbone == "resnet":
        _check_choice("num_layers", num_layers, NUM_LAYERS)
    for name, spec in ARCHITECTURES.items():
        if (spec.decoder, spec.backbone) == (model_type, backbone) and (backbone != "resnet" or spec.depth == num_layers):
            return name
    supported = ", ".join(f"{spec.decoder}+{spec.backbone}" for spec in ARCHITECTURES.values() if spec.depth in (None, 50))
    raise ConfigError(f"model_type={model_type!r} with backbone={backbone!r} is not available; "
                      f"available combinations: {supported}")


class RefineNet:
    """A RefineNet model: ``train`` it, ``deploy`` it on images, ``eval`` it on a data set, ``export`` it.

    ``model`` is a checkpoint (file or folder) to load, or the folder where training writes snapshots.
    When it holds a model description (model.json) that description is used, and any of
    ``model_type``, ``num_layers``, ``backbone`` and ``num_classes`` given here must agree with it.
    Otherwise they choose the architecture (default: full RefineNet, ResNet-101, 21 classes; a data set
    with a class table sets the class count when ``num_classes`` is not given). ``precision`` is what
    ``deploy``, ``eval`` and ``export`` compute in: float32 (the default), bfloat16, auto (bfloat16 where
    the hardware computes it, see :func:`refinenet_tf.hardware.choose_precision`), or int8 (ONNX Runtime,
    single scale; ``export`` writes ONNX only). A quantized model folder runs in int8 as it is; a checkpoint is
    quantized once, when first needed, on the ``calibration`` images: a list file (paths relative to
    ``calibration_data_dir``, default the list's folder), a folder of images or a sequence of image paths, of which
    ``calibration_images`` spread over it are used (:func:`refinenet_tf.quantize.folder.quantize_checkpoint`,
    without the accuracy guard; the quantized model lives in a temporary folder until :meth:`close`).
    """

    def __init__(self, model_type: str | None = None, num_layers: int | None = None, backbone: str | None = None,
                 num_classes: int | None = None, model: str | None = None, threads: int | None = None,
                 precision: str = "float32", calibration: str | Sequence[str] | None = None,
                 calibration_data_dir: str | None = None, calibration_images: int = CALIBRATION_IMAGES):
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
        if backbone == "mobilenetv2" and num_layers is not None:
            raise ConfigError(f"num_layers={num_layers!r} applies to backbone='resnet' only, not 'mobilenetv2'")
        self._given = {"model_type": model_type, "backbone": backbone, "num_layers": num_layers,
                       "num_classes": num_classes}
        chosen = {key: value if value is not None else DEFAULTS[key] for key, value in self._given.items()}
        self._arch = arch_name(chosen["model_type"], chosen["backbone"], chosen["num_layers"])
        self.model = model
        self.threads = threads
        self.precision = choose_precision(precision).precision
        self._calibration = _calibration_settings(self.precision, calibration, calibration_data_dir,
                                                  calibration_images)
        self._int8: tuple[str, str, contextlib.ExitStack] | None = None  # checkpoint, its quantized folder, cleanup
        self.checkpoint: str | None = None
        self._description: ModelDescription | None = None
        self._described = model is not None and has_description(model)  # the description is fixed by model.json
        self._predictors: dict = {}
        self._prepared: dict[tuple, _Data] = {}  # data set folders already converted, by (folder, split, purpose)
        if self._described:
            self._description = load_description(model)
            self._check_against(self._description, f"the model description of {model}")
        if model is not None and is_quantized(model):  # an int8 model folder: its ONNX models stand for weights
            self.checkpoint = model
        elif model is not None and _holds_checkpoint(model):
            self.checkpoint = checkpoints.resolve_checkpoint(model)

    # --- the model ----------------------------------------------------------------------------------------

    @property
    def description(self) -> ModelDescription:
        """The model description: the checkpoint's, or the one built from the constructor's arguments."""
        if self._description is None:
            self._description = default_description(self._arch, self._given["num_classes"] or DEFAULTS["num_classes"])
        return self._description

    def __repr__(self) -> str:
        description = self.description
        return (f"RefineNet(arch={description.arch!r}, num_classes={description.num_classes}, "
                f"checkpoint={self.checkpoint!r})")

    # --- train --------------------------------------------------------------------------------------------

    def train(self, dataset: str, data_dir: str | None = None, split: str | None = None,
              snapshot_dir: str | None = None, on_step: Callable[[int, float], None] | None = None,
              **settings) -> TrainResult:
        """Train on ``dataset`` and return the :class:`~refinenet_tf.train.trainer.TrainResult`.

        ``dataset`` is a list file (paths relative to ``data_dir``, default the list's folder) or a data
        set folder (class_dict, VOC, Cityscapes or images/+labels/ layout; its lists are written to
        ``<dataset>/lists``, ``split`` picks one, default train_aug, train or trainval). Snapshots go to
        ``snapshot_dir`` (default: ``model`` when it is a folder, else ./snapshots/); a run continues the
        snapshots already there. Training starts from the model's checkpoint when it has one, unless
        ``restore_from`` is given. ``settings`` are any other :class:`TrainConfig` fields, e.g.
        ``learning_rate``, ``num_steps``, ``batch_size``, ``input_size``, ``optimizer``, ``random_mirror``,
        ``loss`` and ``class_weights`` (imbalanced data: see the README).
        ``on_step(step, loss)`` is called after every update.
        """
        allowed = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _MANAGED_TRAIN_FIELDS]
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise ConfigError(f"train() got unknown argument {unknown[0]!r}; allowed: dataset, data_dir, split, "
                              f"snapshot_dir, on_step, {', '.join(allowed)}")
        data = self._dataset(dataset, data_dir, split, TRAIN_SPLITS, "train")
        description = self._description_for(data.table, dataset)
        if snapshot_dir is None:
            snapshot_dir = self._default_snapshot_dir() or SNAPSHOT_DIR
        if "restore_from" not in settings and self.checkpoint is not None and \
                os.path.realpath(os.path.dirname(self.checkpoint)) != os.path.realpath(snapshot_dir):
            settings["restore_from"] = self.checkpoint
        settings.setdefault("threads", self.threads)
        config = TrainConfig(description=description, data_dir=data.data_dir, data_list=data.list_path,
                             snapshot_dir=snapshot_dir, **settings)
        trainer = Trainer(config)
        result = trainer.run(on_step)
        self._description, self._described = trainer.config.description, True  # with the input fitted to the data
        if result.snapshot is not None:
            self.checkpoint = result.snapshot
            self._close_predictors()
        return result

    # --- deploy -------------------------------------------------------------------------------------------

    def deploy(self, image=None, image_file: str | None = None, output_file: str | None = None,
               scales: Sequence[float] = (1.0,), fusion: str = "max", flip: bool = False, tile=None,
               tile_overlap: float = TILE_OVERLAP, threshold: float | None = None,
               min_confidence: float | None = None) -> np.ndarray:
        """Segment one image: ``image`` (HxWx3 uint8 RGB array or PIL image) or ``image_file``.

        Returns the HxW int32 class-index mask; ``output_file`` also receives it painted in the model's
        class colours (PNG). ``scales``, ``fusion`` and ``flip`` select multi-scale / mirrored prediction.
        ``tile=(height, width)`` (multiples of 32) predicts in overlapping windows sharing ``tile_overlap`` of a
        tile, blended, so memory follows the tile; ``tile='auto'`` tiles only an image too large for memory.
        ``threshold`` (two-class models) makes foreground where its probability is at least that; with
        ``min_confidence`` pixels whose top probability is below it are unknown: the model's ignore label, painted
        in the void colour (see :mod:`refinenet_tf.predict.decision`).
        """
        if (image is None) == (image_file is None):
            raise ConfigError("deploy() needs exactly one of image= (array or PIL image) and image_file=")
        check_tile_setting(tile)
        check_overlap(tile_overlap)
        rule = self._rule(threshold, min_confidence)
        rgb = (load_model_image(image_file, self.description.preprocessing) if image_file is not None
               else _as_model_input(image, self.description.preprocessing))
        labels, _ = labels_of(self._predictor(tuple(scales), fusion, flip), rgb, tile, tile_overlap, rule=rule)
        if output_file is not None:
            void_label = self.description.ignore_label if min_confidence is not None else None
            try:
                Image.fromarray(colourise(labels, self.description.palette(), void_label)).save(output_file)
            except (OSError, ValueError) as error:
                raise ConfigError(f"{output_file}: cannot write the mask ({error})") from None
        return labels

    # --- eval ---------------------------------------------------------------------------------------------

    def eval(self, dataset: str, output_file: str | None = None, data_dir: str | None = None,
             split: str | None = None, scales: Sequence[float] = (1.0,), fusion: str = "max", flip: bool = False,
             save_dir: str | None = None, report: str | None = None, report_images: int = REPORT_IMAGES,
             tile=None, tile_overlap: float = TILE_OVERLAP, threshold: float | None = None,
             min_confidence: float | None = None) -> dict:
        """Score the model on a labelled ``dataset`` (as in :meth:`train`; default split val, then test).

        Returns the results dict (per-class and mean IoU, accuracies, confusion matrix), also written
        to ``output_file`` as JSON when given; ``save_dir`` receives the predicted masks. ``report`` is a
        folder for the HTML report (``index.html``, charts, the ``report_images`` worst and best images;
        needs matplotlib), which links ``output_file`` or writes its own results.json. ``tile`` and
        ``tile_overlap``, ``threshold`` and ``min_confidence`` as in :meth:`deploy`; with ``min_confidence`` the
        unknown pixels count as misses of their class and the results add ``coverage`` and ``accuracy_covered``.
        """
        model = self._model_for("eval")
        data = self._dataset(dataset, data_dir, split, EVAL_SPLITS, "eval")
        options = PredictOptions(tuple(scales), fusion, flip)
        samples = read_list_file(data.data_dir, data.list_path)
        job = EvaluationJob(options, tile=tile, tile_overlap=tile_overlap,
                            rule=self._rule(threshold, min_confidence), precision=self.precision,
                            threads=self.threads, save_dir=save_dir, results_file=output_file, report=report,
                            report_images=report_images,
                            metadata={"checkpoint": self.checkpoint} if model != self.checkpoint else {})
        return run_evaluation_job(model, samples, self.description, data.list_path, job)[1]

    # --- export -------------------------------------------------------------------------------------------

    def export(self, output_dir: str, format: str = "saved_model", input_size: tuple[int, int] | None = None) -> str:
        """Export the checkpoint (see :mod:`refinenet_tf.export`); returns the exported model's path. In int8, and
        for a quantized model folder, the format is ``onnx``: the int8 model ``deploy`` runs."""
        if self.precision == "int8":  # quantize only for a format that int8 can export
            model = self._model_for("export") if format == "onnx" else self._require_checkpoint("export")
            return export_model(model, output_dir, format, self.description, input_size, "int8")
        precision = self.precision if format in BFLOAT16_FORMATS else "float32"
        return export_model(self._require_checkpoint("export"), output_dir, format, self.description, input_size,
                            precision)

    # --- resources ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the prediction sessions and the int8 model quantized for them (both are remade when needed)."""
        self._close_predictors()
        self._release_int8()

    def __enter__(self) -> RefineNet:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- helpers ------------------------------------------------------------------------------------------

    def _check_against(self, saved: ModelDescription, source: str) -> None:
        """Refuse constructor arguments that contradict a saved description, naming both values."""
        spec = ARCHITECTURES[saved.arch]
        saved_values = {"model_type": spec.decoder, "backbone": spec.backbone, "num_layers": spec.depth,
                        "num_classes": saved.num_classes}
        for name, given in self._given.items():
            if given is not None and given != saved_values[name]:
                raise ConfigError(f"{name}={given!r} disagrees with {source} ({saved.arch}, {saved.num_classes} "
                                  f"classes: {name}={saved_values[name]!r}); drop the argument or use another model")

    def _description_for(self, table: ClassTable | None, dataset: str) -> ModelDescription:
        """The description to train: the checkpoint's, or a new one taking names and class count from ``table``."""
        if self._described or self._given["num_classes"] is not None or table is None:
            description = self.description
            if table is not None and table.num_classes != description.num_classes:
                raise ConfigError(f"{dataset}: the data set has {table.num_classes} classes but the model "
                                  f"{description.num_classes} (num_classes)")
        else:
            description = default_description(self._arch, table.num_classes)
        if table is not None and description.class_names is None:
            description = description.replace(class_names=list(table.names),
                                              colours=[list(colour) for colour in table.colours])
        return description

    def _dataset(self, dataset: str, data_dir: str | None, split: str | None, preferred: Sequence[str],
                 purpose: str) -> _Data:
        """:func:`_resolve_dataset`, converting a data set folder only once per instance."""
        key = (os.path.realpath(dataset), data_dir, split, purpose)
        if key not in self._prepared or not os.path.isdir(dataset):
            self._prepared[key] = _resolve_dataset(dataset, data_dir, split, preferred, purpose)
        return self._prepared[key]

    def _default_snapshot_dir(self) -> str | None:
        """``model`` when it is a new folder or a folder of this model's snapshots (to resume), else None."""
        if self.model is None:
            return None
        if not _holds_checkpoint(self.model):
            return self.model
        return self.model if os.path.isdir(self.model) and self._described else None

    def _rule(self, threshold: float | None, min_confidence: float | None) -> LabelRule:
        """The LabelRule of ``threshold`` and ``min_confidence``, checked against the model."""
        rule = LabelRule(threshold, min_confidence)
        rule.check_classes(self.description.num_classes)
        return rule

    def _require_checkpoint(self, action: str) -> str:
        if self.checkpoint is None:
            where = f"{self.model} holds no checkpoint" if self.model is not None else "no model= was given"
            raise ConfigError(f"{action}() needs trained weights: {where}; call train() first or pass model=")
        return self.checkpoint

    def _model_for(self, action: str) -> str:
        """What ``action`` runs: the checkpoint, or in int8 with calibration images the checkpoint quantized on them,
        once per checkpoint, into a temporary folder kept until :meth:`close`."""
        checkpoint = self._require_checkpoint(action)
        if self.precision != "int8" or self._calibration is None or is_quantized(checkpoint):
            return checkpoint  # int8 without calibration: the Predictor's one-line error says what is missing
        if self._int8 is None or self._int8[0] != checkpoint:
            self._release_int8()
            require_onnxruntime()
            from refinenet_tf.quantize.folder import quantized_folder  # deferred: ONNX Runtime, for int8 only

            cleanup = contextlib.ExitStack()
            folder = cleanup.enter_context(quantized_folder(checkpoint, self.description, threads=self.threads,
                                                            **self._calibration))
            self._int8 = (checkpoint, folder, cleanup)
        return self._int8[1]

    def _release_int8(self) -> None:
        """Delete the int8 model quantized from the checkpoint, if any."""
        if self._int8 is not None:
            self._int8[2].close()
            self._int8 = None

    def _predictor(self, scales: tuple[float, ...], fusion: str, flip: bool) -> Predictor:
        options = PredictOptions(tuple(float(scale) for scale in scales), fusion, flip)
        if options not in self._predictors:
            self._predictors[options] = Predictor(self._model_for("deploy"), self.description, options,
                                                  threads=self.threads, precision=self.precision)
        return self._predictors[options]

    def _close_predictors(self) -> None:
        for predictor in self._predictors.values():
            predictor.close()
        self._predictors.clear()


@dataclasses.dataclass(frozen=True)
class _Data:
    """A list file, the folder its paths are relative to, and the data set's class table if known."""

    list_path: str
    data_dir: str
    table: ClassTable | None


def _resolve_dataset(dataset: str, data_dir: str | None, split: str | None, preferred: Sequence[str],
                     purpose: str) -> _Data:
    """A list file as is, or a data set folder prepared into ``<folder>/lists`` and one of its splits."""
    if not isinstance(dataset, (str, os.PathLike)):
        raise ConfigError(f"dataset must be a path (list file or data set folder), got {type(dataset).__name__}")
    dataset = os.fspath(dataset)
    if os.path.isfile(dataset):
        if split is not None:
            raise ConfigError(f"split={split!r} applies to data set folders; {dataset} is a list file")
        table_path = os.path.join(os.path.dirname(os.path.abspath(dataset)), CLASS_DICT)
        table = read_class_table(table_path) if os.path.isfile(table_path) else None
        return _Data(dataset, data_dir if data_dir is not None else os.path.dirname(os.path.abspath(dataset)), table)
    if not os.path.isdir(dataset):
        raise DataError(f"{dataset}: dataset not found (expected a list file or a data set folder)")
    if data_dir is not None:
        raise ConfigError(f"data_dir applies to list files; {dataset} is a data set folder")
    prepared = prepare_dataset(dataset, lists_dir=os.path.join(dataset, LISTS_FOLDER))
    if split is None:
        split = next((name for name in preferred if name in prepared.lists), None)
        if split is None:
            raise DataError(f"{dataset}: no split for {purpose} (looked for {', '.join(preferred)}; "
                            f"found {', '.join(prepared.lists)}); pass split=")
    elif split not in prepared.lists:
        raise ConfigError(f"split={split!r} is not in {dataset}; choose one of: {', '.join(prepared.lists)}")
    return _Data(prepared.lists[split], prepared.data_dir, prepared.table)


def _calibration_settings(precision: str, calibration, data_dir: str | None, images: int) -> dict | None:
    """The calibration arguments of :func:`~refinenet_tf.quantize.folder.quantize_checkpoint`, checked (None without
    ``calibration``)."""
    if calibration is None:
        return None
    if precision != "int8":
        raise ConfigError(f"calibration applies to precision='int8', not {precision!r}: drop it or ask for int8")
    if isinstance(calibration, (str, os.PathLike)):
        calibration = os.fspath(calibration)
    elif isinstance(calibration, Sequence) and calibration and all(isinstance(path, (str, os.PathLike))
                                                                    for path in calibration):
        calibration = [os.fspath(path) for path in calibration]
    else:
        raise ConfigError(f"calibration must be a list file, a folder or a sequence of image paths, got {calibration!r}")
    if not isinstance(images, int) or images < 1:
        raise ConfigError(f"calibration_images must be a positive integer, got {images!r}")
    return {"calibration": calibration, "data_dir": data_dir, "calibration_images": images}


def _check_choice(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(repr(choice) for choice in allowed)}; got {value!r}")


def _holds_checkpoint(path: str) -> bool:
    """True when ``path`` is a checkpoint prefix or file, or a folder with a checkpoint state file."""
    try:
        checkpoints.resolve_checkpoint(path)
    except CheckpointError:
        return False
    return True


def _as_model_input(image, preprocessing: Preprocessing) -> np.ndarray:
    """A PIL image or an array as the model takes it: uint8 HxWx3 RGB, or HxWxbands of a model of other bands."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"), dtype=np.uint8) if preprocessing.is_rgb else np.asarray(image)
    if preprocessing.is_rgb:
        return checked_rgb(image, also=" or a PIL image")
    return checked_bands(np.asarray(image), preprocessing, "image")

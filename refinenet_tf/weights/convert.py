"""Turn a weight file from another project into a refinenet-tf checkpoint plus its model description.

Each source fixes how the backbone must be built for its weights to mean what they meant there: where the
ResNet stride sits, how stride-2 layers pad, the batch-norm epsilon and the input preprocessing. These go
into ``model.json`` beside ``model.ckpt-0`` so every later script builds the model the same way.

Loading is strict: a file for another architecture, another class count, or with missing, extra or
mis-shaped tensors fails with one message that names them all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from refinenet_tf.architectures import ArchSpec, check_arch, is_backbone_variable, is_classifier_variable
from refinenet_tf.checkpoints import variable_name
from refinenet_tf.defaults import RANDOM_SEED
from refinenet_tf.description import ModelDescription, Preprocessing
from refinenet_tf.errors import ConfigError, WeightsError, parameter
from refinenet_tf.models.model import build_model
from refinenet_tf.snapshots import SnapshotWriter, save_snapshot
from refinenet_tf.weights.deeplab import read_deeplab_checkpoint
from refinenet_tf.weights.keras_h5 import keras_depth, map_keras_layers, read_keras_h5
from refinenet_tf.weights.source import SourceWeights, describe_names
from refinenet_tf.weights.torch_state_dict import map_state_dict, read_state_dict, torchvision_depth

v1 = tf.compat.v1
_LOG = logging.getLogger(__name__)

NAMED_PER_KIND = 3  # missing, unexpected and mis-shaped names shown in an error, each


def _read_deeplab(path: str, spec: ArchSpec) -> SourceWeights:
    return read_deeplab_checkpoint(path)


def _read_keras(path: str, spec: ArchSpec) -> SourceWeights:
    layers = read_keras_h5(path)
    return map_keras_layers(path, layers, keras_depth(layers) or spec.depth)


def _torch_reader(with_decoder: bool, imagenet_head: bool) -> Callable[[str, ArchSpec], SourceWeights]:
    def read(path: str, spec: ArchSpec) -> SourceWeights:
        state = read_state_dict(path)
        depth = (torchvision_depth(state) or spec.depth) if spec.backbone == "resnet" else None
        return map_state_dict(path, state, spec.backbone, depth, with_decoder, ignore_classifier_head=imagenet_head)

    return read


@dataclass(frozen=True)
class WeightSource:
    """A weight format, what it can hold, and the conventions its weights were trained with."""

    read: Callable[[str, ArchSpec], SourceWeights]
    backbones: tuple[str, ...]  # backbones it provides
    decoder: str | None  # None: backbone only (the decoder starts fresh); else 'refinenet' or 'lightweight'
    stride_on: str
    padding: str
    batch_norm_epsilon: float
    preprocessing: Callable[[], Preprocessing]

    def description(self, arch: str, num_classes: int, class_names: list[str] | None) -> ModelDescription:
        """The model description a checkpoint converted from this source must carry."""
        return ModelDescription(arch=arch, num_classes=num_classes, stride_on=self.stride_on, padding=self.padding,
                                batch_norm_epsilon=self.batch_norm_epsilon, preprocessing=self.preprocessing(),
                                class_names=class_names)


SOURCES: dict[str, WeightSource] = {
    "deeplab": WeightSource(_read_deeplab, ("resnet",), None, "1x1", "same", 1e-3, Preprocessing.deeplab),
    "keras": WeightSource(_read_keras, ("resnet",), None, "1x1", "symmetric", 1.001e-5, Preprocessing.keras),
    "torchvision": WeightSource(_torch_reader(False, True), ("resnet",), None, "3x3", "symmetric", 1e-5,
                                Preprocessing.torch),
    "lw-refinenet": WeightSource(_torch_reader(True, False), ("resnet", "mobilenetv2"), "lightweight", "3x3",
                                 "symmetric", 1e-5, Preprocessing.torch),
    "refinenet-pytorch": WeightSource(_torch_reader(True, False), ("resnet",), "refinenet", "3x3", "symmetric",
                                      1e-5, Preprocessing.torch),
}


@dataclass
class LoadReport:
    """How a set of arrays matched a set of variables."""

    assigned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # variables with no array
    unexpected: list[str] = field(default_factory=list)  # arrays with no variable
    mis_shaped: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (name, array shape, variable shape)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mis_shaped)

    def describe(self, label: Callable[[str], str] = str) -> str:
        """The count of each kind of problem and a few names of each, on one line; ``label`` renders a name
        (e.g. with its key in the file)."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing from the file: {_some(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected: {_some([label(n) for n in self.unexpected])}")
        if self.mis_shaped:
            shapes = [f"{label(n)} is {list(a)} but the model needs {list(v)}" for n, a, v in self.mis_shaped]
            parts.append(f"{len(self.mis_shaped)} mis-shaped: {_some(shapes)}")
        return "; ".join(parts)


def _some(items: list[str]) -> str:
    """All of ``items`` when there are at most :data:`NAMED_PER_KIND`, else the first few and the last."""
    if len(items) <= NAMED_PER_KIND:
        return ", ".join(items)
    shown = items[:NAMED_PER_KIND - 1]
    return f"{', '.join(shown)} and {len(items) - len(shown)} more, the last {items[-1]}"


def match_arrays(arrays: dict[str, np.ndarray], variables) -> LoadReport:
    """Compare arrays with variables by name and shape (nothing is assigned)."""
    report = LoadReport()
    by_name = {variable_name(v): v for v in variables}
    for name, variable in by_name.items():
        if name not in arrays:
            report.missing.append(name)
            continue
        shape = tuple(variable.shape.as_list())
        if tuple(arrays[name].shape) != shape:
            report.mis_shaped.append((name, tuple(arrays[name].shape), shape))
        else:
            report.assigned.append(name)
    report.unexpected = [name for name in arrays if name not in by_name]
    return report


def assign_from_arrays(session, arrays: dict[str, np.ndarray], variables, strict: bool = True) -> LoadReport:
    """Set ``variables`` (tf.Variable list) from ``arrays`` keyed by variable name (no ':0').

    Strict: any missing, unexpected or mis-shaped name raises WeightsError naming them, and nothing is assigned.
    Not strict: assigns the names that fit and returns the report of the rest. Adds no ops to the graph (it feeds
    each variable's initial value into its initializer), so it also works on a finalised graph.
    """
    report = match_arrays(arrays, variables)
    if strict and not report.ok:
        raise WeightsError(f"weights do not fit the model: {report.describe()}")
    assigned = set(report.assigned)
    chosen = [v for v in variables if variable_name(v) in assigned]
    if chosen:
        feed = {v.initial_value: np.asarray(arrays[variable_name(v)], dtype=v.dtype.base_dtype.as_numpy_dtype)
                for v in chosen}
        session.run([v.initializer for v in chosen], feed_dict=feed)
    return report


def check_source_fits(source: str, arch: str) -> tuple[WeightSource, ArchSpec]:
    """The source and arch specs, or a ConfigError when the source cannot provide that architecture."""
    if source not in SOURCES:
        raise ConfigError(f"unknown weight source {source!r}; choose one of: {', '.join(SOURCES)}")
    weight_source, spec = SOURCES[source], check_arch(arch)
    if spec.backbone not in weight_source.backbones:
        raise ConfigError(f"{parameter('source')} {source} holds {'/'.join(weight_source.backbones)} weights, "
                          f"{parameter('arch')} {arch} has a {spec.backbone} backbone")
    if weight_source.decoder and weight_source.decoder != spec.decoder:
        wanted = "an lw-refinenet-* arch" if weight_source.decoder == "lightweight" else "a refinenet-resnet* arch"
        raise ConfigError(f"{parameter('source')} {source} holds a {weight_source.decoder} decoder; "
                          f"{parameter('arch')} {arch} does not "
                          f"(use {wanted})")
    return weight_source, spec


def convert_weights(src: str, source: str, arch: str, num_classes: int, output_dir: str,
                    not_restore_last: bool = False, class_names: list[str] | None = None,
                    random_seed: int = RANDOM_SEED) -> str:
    """Convert ``src`` into ``output_dir/model.ckpt-0`` + ``model.json``; returns the checkpoint path.

    Backbone-only sources (deeplab, keras, torchvision) fill the backbone; the decoder is freshly initialised
    (seeded by ``random_seed``). ``not_restore_last`` leaves the file's classifier out (for another class count).
    """
    weight_source, spec = check_source_fits(source, arch)
    if os.path.isdir(output_dir) and tf.train.latest_checkpoint(output_dir):
        raise ConfigError(f"{parameter('output_dir')} {output_dir} already holds a checkpoint; choose a new directory")
    description = weight_source.description(arch, num_classes, class_names)
    weights = weight_source.read(src, spec)
    _LOG.info("%s: read %d tensors", src, len(weights.arrays))
    for note in weights.notes:
        _LOG.info("%s: %s", src, note)
    if not_restore_last:
        dropped = [name for name in weights.arrays if is_classifier_variable(name)]
        for name in dropped:
            del weights.arrays[name]
        if dropped:
            _LOG.info("%s: left out the classifier (%s); it is freshly initialised", src, ", ".join(dropped))

    with tf.Graph().as_default():
        v1.set_random_seed(random_seed)
        images = v1.placeholder(tf.float32, [None, None, None, 3], name="images")
        build_model(images, description)
        variables = v1.global_variables()
        targets = [v for v in variables
                   if (weight_source.decoder or is_backbone_variable(variable_name(v)))
                   and not (not_restore_last and is_classifier_variable(variable_name(v)))]
        report = match_arrays(weights.arrays, targets)
        report.unexpected += weights.unmapped
        if not report.ok:
            raise WeightsError(_mismatch_message(weights, report, description, targets))
        with v1.Session() as session:
            assign_from_arrays(session, weights.arrays, targets)
            fresh = [v for v in variables if variable_name(v) not in weights.arrays]
            session.run(v1.variables_initializer(fresh))
            path = save_snapshot(SnapshotWriter.of(variables), session, output_dir, 0, description)
    if not weight_source.decoder:
        _LOG.info("%s holds a backbone only: the %s decoder is freshly initialised", src, arch)
    _LOG.info("wrote %s (%d of %d variables from %s) and its model.json", path, len(report.assigned), len(variables),
             src)
    return path


def _mismatch_message(weights: SourceWeights, report: LoadReport, description: ModelDescription, targets) -> str:
    arch, num_classes = description.arch, description.num_classes
    classifier_only = not (report.missing or report.unexpected) and all(
        is_classifier_variable(name) for name, _, _ in report.mis_shaped)
    if classifier_only:
        file_classes = report.mis_shaped[0][1][-1]
        return (f"{weights.path}: its classifier (clf_conv) has {file_classes} classes but {parameter('num_classes')} is "
                f"{num_classes}: use {parameter('num_classes')} {file_classes}, or pass {parameter('not_restore_last')} to convert "
                f"everything but the classifier (which then starts fresh)")
    held = describe_names(weights.arrays)
    needed = describe_names(variable_name(v) for v in targets)
    hint = f"it holds {held} weights but {parameter('arch')} {arch} needs {needed}; " if held != needed else ""
    return (f"{weights.path}: does not fit {parameter('arch')} {arch} {parameter('num_classes')} {num_classes}: "
            f"{hint}{report.describe(weights.label)}")

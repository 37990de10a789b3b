"""The procedural demo data set."""

import os

import numpy as np
from PIL import Image

from refinenet_tf.data.class_table import read_class_table
from refinenet_tf.data.layouts import ConversionOptions, prepare_class_dict_dataset
from refinenet_tf.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_dataset, render_scene


def folder_bytes(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    first = make_synthetic_dataset(str(tmp_path / "a"), num_train=3, num_val=2, size=(48, 64), seed=5)
    second = make_synthetic_dataset(str(tmp_path / "b"), num_train=3, num_val=2, size=(48, 64), seed=5)
    third = make_synthetic_dataset(str(tmp_path / "c"), num_train=3, num_val=2, size=(48, 64), seed=6)
    for split in ("training", "validation"):
        assert folder_bytes(first.images_dir(split)) == folder_bytes(second.images_dir(split))
        assert folder_bytes(first.labels_dir(split)) == folder_bytes(second.labels_dir(split))
        assert folder_bytes(first.images_dir(split)) != folder_bytes(third.images_dir(split))
    assert Image.open(os.path.join(first.images_dir("training"), "scene_00000.png")).size == (64, 48)
    assert read_class_table(first.class_dict) == SYNTHETIC_CLASSES


def test_masks_use_table_colours_and_convert_to_valid_indices(tmp_path):
    dataset = make_synthetic_dataset(str(tmp_path / "synth"), num_train=10, num_val=5, size=(64, 64), seed=1)
    allowed = {tuple(c) for c in SYNTHETIC_CLASSES.colours}
    for split in ("training", "validation"):
        for name in os.listdir(dataset.labels_dir(split)):
            colours = np.asarray(Image.open(os.path.join(dataset.labels_dir(split), name))).reshape(-1, 3)
            assert {tuple(c) for c in np.unique(colours, axis=0)} <= allowed
    prepared = prepare_class_dict_dataset(dataset.root, lists_dir=str(tmp_path / "dataset"),
                                          options=ConversionOptions(progress=None))
    assert prepared.counts == {"train": 10, "val": 5} and prepared.unmatched == []
    for split in ("train", "val"):
        present = set()
        for line in open(prepared.lists[split]):
            mask = np.asarray(Image.open(prepared.data_dir + line.split()[1]))
            values = set(np.unique(mask).tolist())
            assert values <= set(range(SYNTHETIC_CLASSES.num_classes)) | {255}
            present |= values
        assert present == set(range(SYNTHETIC_CLASSES.num_classes))


def test_scenes_are_learnable_sized_and_colours_vary_within_class_bands():
    """Objects cover a fair share of the image; every class appears in many colours of its own band."""
    mean_colours = {c: [] for c in range(1, SYNTHETIC_CLASSES.num_classes)}
    coverage = []
    for i in range(60):
        image, mask = render_scene(np.random.default_rng(i), (96, 96))
        coverage.append((mask > 0).mean())
        for c in np.unique(mask[mask > 0]):
            mean_colours[c].append(image[mask == c].mean(axis=0))
    assert 0.1 < np.mean(coverage) < 0.6
    centres = []
    for colours in mean_colours.values():
        assert len(colours) >= 5
        assert np.std(np.asarray(colours), axis=0).max() > 15  # varied colours within a class
        centres.append(np.mean(colours, axis=0))
    distances = [np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1:]]
    assert min(distances) > 40, distances  # but each class keeps its own colour band

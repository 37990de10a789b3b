"""tf.data pipelines in graph mode: shapes, padding, augmentation, errors, skipping, determinism."""

import logging

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refinenet_tf.data import augment
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.data.reader import NO_LABEL, SkipCounter, eval_dataset, reader_errors, train_dataset
from refinenet_tf.description import Preprocessing
from refinenet_tf.errors import ConfigError, DataError

IGNORE = 255
NUM_CLASSES = 4
IDENTITY = Preprocessing("RGB", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _make_samples(tmp_path, images, masks=None, require_masks=True):
    """Write images (and masks) as PNGs under tmp_path/data and return the parsed list."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    lines = []
    for number, image in enumerate(images):
        Image.fromarray(image).save(data_dir / f"img{number}.png")
        line = f"/img{number}.png"
        if masks is not None:
            Image.fromarray(masks[number]).save(data_dir / f"mask{number}.png")
            line += f" /mask{number}.png"
        lines.append(line)
    list_path = tmp_path / "list.txt"
    list_path.write_text("\n".join(lines) + "\n")
    return read_list_file(str(data_dir), str(list_path), require_masks=require_masks)


def _random_pairs(count, height, width, seed=0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
    masks = [rng.choice(np.array([0, 1, 3, IGNORE], np.uint8), (height, width)) for _ in range(count)]
    return images, masks


def _run_batches(dataset, count):
    """Build a one-shot iterator in the current graph and fetch ``count`` elements in a session."""
    element = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    with tf.compat.v1.Session() as session, reader_errors():
        return [session.run(element) for _ in range(count)]


def _train(samples, **options):
    settings = dict(
        preprocessing=IDENTITY,
        crop_size=(8, 10),
        batch_size=2,
        num_classes=NUM_CLASSES,
        ignore_label=IGNORE,
        seed=3,
    )
    settings.update(options)
    return train_dataset(samples, **settings)


def test_train_batches_have_static_shapes_and_valid_labels(tmp_path):
    samples = _make_samples(tmp_path, *_random_pairs(3, 12, 14))
    with tf.Graph().as_default():
        dataset = _train(
            samples, random_scale=True, random_mirror=True, preprocessing=Preprocessing.deeplab()
        )
        images_spec, labels_spec = dataset.element_spec
        assert images_spec.shape.as_list() == [2, 8, 10, 3] and images_spec.dtype == tf.float32
        assert labels_spec.shape.as_list() == [2, 8, 10, 1] and labels_spec.dtype == tf.int32
        batches = _run_batches(dataset, 4)
    labels = np.concatenate([labels for _, labels in batches])
    assert set(np.unique(labels)) <= {0, 1, 3, IGNORE}


def test_small_image_is_padded_with_zero_image_and_ignore_label(tmp_path):
    images, masks = _random_pairs(1, 5, 4)
    samples = _make_samples(tmp_path, images, masks)
    preprocessing = Preprocessing.deeplab()
    with tf.Graph().as_default():
        [(image, label)] = _run_batches(_train(samples, preprocessing=preprocessing, batch_size=1), 1)
    image, label = image[0], label[0, ..., 0]
    np.testing.assert_allclose(image[:5, :4], preprocessing.apply_numpy(images[0]), atol=1e-4)
    np.testing.assert_array_equal(label[:5, :4], masks[0])
    assert np.all(image[5:] == 0) and np.all(image[:, 4:] == 0)
    assert np.all(label[5:] == IGNORE) and np.all(label[:, 4:] == IGNORE)


def test_random_scale_is_nearest_for_masks_and_stays_in_range():
    rng = np.random.default_rng(1)
    mask = rng.choice(np.array([0, 2, 7, IGNORE], np.int32), (10, 12, 1))
    image = rng.uniform(0, 255, (10, 12, 3)).astype(np.float32)
    with tf.Graph().as_default():
        seed = tf.compat.v1.placeholder(tf.int64, [2])
        scaled = augment.random_scale(tf.constant(image), tf.constant(mask), 0.5, 1.5, seed)
        with tf.compat.v1.Session() as session:
            results = [session.run(scaled, {seed: [4, n]}) for n in range(8)]
    heights = {scaled_mask.shape[0] for _, scaled_mask in results}
    assert len(heights) > 1 and all(5 <= h <= 15 for h in heights)
    for scaled_image, scaled_mask in results:
        assert scaled_image.shape[:2] == scaled_mask.shape[:2]
        assert set(np.unique(scaled_mask)) <= {0, 2, 7, IGNORE}


def test_mirror_flips_image_and_mask_together(tmp_path):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    mask = (image[..., 0] // 64).astype(np.uint8)  # the mask is a function of the pixels
    samples = _make_samples(tmp_path, [image], [mask])
    with tf.Graph().as_default():
        batches = _run_batches(_train(samples, crop_size=(6, 9), batch_size=1, random_mirror=True), 12)
    flipped = 0
    for out_image, out_label in batches:
        out_image, out_label = out_image[0].astype(np.uint8), out_label[0, ..., 0]
        np.testing.assert_array_equal(out_label, out_image[..., 0] // 64)
        if np.array_equal(out_image, image[:, ::-1]):
            flipped += 1
        else:
            np.testing.assert_array_equal(out_image, image)
    assert 0 < flipped < 12


def test_same_seed_gives_identical_batches(tmp_path):
    samples = _make_samples(tmp_path, *_random_pairs(4, 12, 14))

    def first_batches(seed, parallel=1):
        with tf.Graph().as_default():
            dataset = _train(
                samples, random_scale=True, random_mirror=True, seed=seed, num_parallel_calls=parallel
            )
            return _run_batches(dataset, 3)

    first, second, other = first_batches(7), first_batches(7), first_batches(8)
    parallel = first_batches(7, parallel=tf.data.AUTOTUNE)
    for (images_a, labels_a), (images_b, labels_b), (images_c, labels_c) in zip(
        first, second, parallel, strict=True
    ):
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(labels_a, labels_b)
        np.testing.assert_array_equal(images_a, images_c)
        np.testing.assert_array_equal(labels_a, labels_c)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_eval_examples_in_list_order_at_full_size(tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (5 + n, 7 - n, 3), dtype=np.uint8) for n in range(3)]
    masks = [rng.integers(0, NUM_CLASSES, image.shape[:2], dtype=np.uint8) for image in images]
    samples = _make_samples(tmp_path, images, masks)
    preprocessing = Preprocessing.deeplab()
    with tf.Graph().as_default():
        examples = _run_batches(eval_dataset(samples, preprocessing, NUM_CLASSES, IGNORE), 3)
    for example, image, mask, sample in zip(examples, images, masks, samples, strict=True):
        assert example["path"].decode() == sample.image_path
        np.testing.assert_array_equal(example["raw"], image[np.newaxis])
        np.testing.assert_allclose(example["image"], preprocessing.apply_numpy(image)[np.newaxis], atol=1e-4)
        assert example["label"].dtype == np.int32
        np.testing.assert_array_equal(example["label"], mask[np.newaxis])


def test_eval_without_masks_fills_labels_with_minus_one(tmp_path):
    images, _ = _random_pairs(2, 4, 5)
    samples = _make_samples(tmp_path, images, require_masks=False)
    with tf.Graph().as_default():
        examples = _run_batches(eval_dataset(samples, IDENTITY, NUM_CLASSES, IGNORE), 2)
    assert all(
        np.all(example["label"] == NO_LABEL) and example["label"].shape == (1, 4, 5) for example in examples
    )


def _break_samples(tmp_path, samples):
    """Make sample 1's image truncated and sample 3's mask an RGB image."""
    with open(samples[1].image_path, "r+b") as handle:
        handle.truncate(60)
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(samples[3].mask_path)


def test_reader_errors_turns_a_bad_file_into_data_error(tmp_path):
    samples = _make_samples(tmp_path, *_random_pairs(4, 4, 5))
    _break_samples(tmp_path, samples)
    with tf.Graph().as_default():
        element = tf.compat.v1.data.make_one_shot_iterator(
            eval_dataset(samples, IDENTITY, NUM_CLASSES, IGNORE)
        ).get_next()
        with tf.compat.v1.Session() as session:
            session.run(element)
            with pytest.raises(DataError) as caught, reader_errors():
                session.run(element)
    message = str(caught.value)
    assert samples[1].image_path in message and f"{samples[1].origin}" in message
    assert "\n" not in message and "Traceback" not in message


def test_reader_errors_leaves_other_errors_alone(tmp_path):
    samples = _make_samples(tmp_path, *_random_pairs(1, 4, 5))
    with tf.Graph().as_default():
        element = tf.compat.v1.data.make_one_shot_iterator(
            eval_dataset(samples, IDENTITY, NUM_CLASSES, IGNORE)
        ).get_next()
        with tf.compat.v1.Session() as session:
            session.run(element)
            with pytest.raises(tf.errors.OutOfRangeError), reader_errors():
                session.run(element)


def test_bad_label_values_stop_training_with_data_error(tmp_path):
    images, masks = _random_pairs(2, 6, 6)
    masks[1][0, 0] = 9
    samples = _make_samples(tmp_path, images, masks)
    with tf.Graph().as_default(), pytest.raises(DataError) as caught:
        _run_batches(_train(samples, batch_size=2, shuffle=False), 1)
    assert samples[1].mask_path in str(caught.value) and "9 (1 px)" in str(caught.value)


def test_skip_mode_skips_logs_and_counts(tmp_path, caplog):
    samples = _make_samples(tmp_path, *_random_pairs(5, 4, 5))
    _break_samples(tmp_path, samples)
    counter = SkipCounter()
    with tf.Graph().as_default(), caplog.at_level(logging.WARNING):
        dataset = eval_dataset(
            samples, IDENTITY, NUM_CLASSES, IGNORE, on_bad_sample="skip", skip_counter=counter
        )
        examples = _run_batches(dataset, 3)
        with pytest.raises(tf.errors.OutOfRangeError):
            _run_batches(dataset, 4)
    assert [e["path"].decode() for e in examples] == [samples[i].image_path for i in (0, 2, 4)]
    assert counter.count == 2
    assert set(counter.reasons) == {samples[1].origin, samples[3].origin}
    assert samples[3].mask_path in counter.reasons[samples[3].origin]
    logged = caplog.text
    assert samples[1].image_path in logged and samples[3].mask_path in logged


def test_skip_mode_in_training_counts_each_sample_once(tmp_path):
    samples = _make_samples(tmp_path, *_random_pairs(5, 4, 5))
    _break_samples(tmp_path, samples)
    counter = SkipCounter()
    with tf.Graph().as_default():
        batches = _run_batches(_train(samples, batch_size=3, on_bad_sample="skip", skip_counter=counter), 4)
    assert all(images.shape == (3, 8, 10, 3) for images, _ in batches)
    assert counter.count == 2


def test_skip_mode_stops_when_every_sample_is_bad(tmp_path):
    samples = _make_samples(tmp_path, *_random_pairs(2, 4, 5))
    for sample in samples:
        Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(sample.mask_path)
    with tf.Graph().as_default(), pytest.raises(DataError, match="every one of the 2 samples"):
        _run_batches(_train(samples, batch_size=1, on_bad_sample="skip"), 1)


def test_training_needs_masks(tmp_path):
    images, _ = _random_pairs(2, 4, 5)
    samples = _make_samples(tmp_path, images, require_masks=False)
    with (
        tf.Graph().as_default(),
        pytest.raises(DataError, match=f"{samples[0].origin}: training needs a mask"),
    ):
        _train(samples)


@pytest.mark.parametrize(
    "options",
    [
        {"crop_size": (0, 10)},
        {"crop_size": (8,)},
        {"batch_size": 0},
        {"min_scale": 1.5, "max_scale": 0.5},
        {"on_bad_sample": "ignore"},
        {"batch_size": 3, "repeat": False},
    ],
)
def test_bad_training_options_are_refused(tmp_path, options):
    samples = _make_samples(tmp_path, *_random_pairs(2, 4, 5))
    with tf.Graph().as_default(), pytest.raises(ConfigError):
        _train(samples, **options)

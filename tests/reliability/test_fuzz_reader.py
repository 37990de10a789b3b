"""Randomly damaged images and masks through the whole reader: every failure must be a DataError."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refinenet_tf.data.images import load_pair
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.data.reader import eval_dataset, reader_errors, train_dataset
from refinenet_tf.description import Preprocessing
from refinenet_tf.errors import DataError

v1 = tf.compat.v1
CASES = 60
SIZE = 24
NUM_CLASSES = 3
IGNORE = 255
IDENTITY = Preprocessing("RGB", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _encode(image: Image.Image, file_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=file_format)
    return buffer.getvalue()


def _wrong_mode_file(rng: np.random.Generator) -> bytes:
    """A well-formed file in a mode the reader must refuse as an image or a mask (or convert, for images)."""
    colour = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    grey = np.asarray(colour)[..., 0]
    choices = [lambda: _encode(colour.convert("P"), "PNG"), lambda: _encode(colour, "PNG"),
               lambda: _encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
               lambda: _encode(Image.fromarray(grey.astype(np.int32)), "TIFF"),
               lambda: _encode(Image.fromarray(grey.astype(np.float32)), "TIFF"),
               lambda: _encode(colour.convert("CMYK"), "JPEG"), lambda: _encode(colour.convert("1"), "PNG"),
               lambda: _encode(colour.convert("LA"), "PNG")]
    return choices[int(rng.integers(0, len(choices)))]()


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (valid CRC) but which holds almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    data = b"IDAT" + zlib.compress(b"\0" * 64)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(data) - 4) + data + struct.pack(">I", zlib.crc32(data))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def _good_pair(rng: np.random.Generator) -> tuple[bytes, bytes]:
    image = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    mask = Image.fromarray(rng.choice(np.array([0, 1, 2, IGNORE], np.uint8), (SIZE, SIZE)))
    return _encode(image, str(rng.choice(["PNG", "JPEG"]))), _encode(mask, "PNG")


def _damage(data: bytes, rng: np.random.Generator, kind: str) -> bytes:
    if kind == "truncate":
        return data[: int(rng.integers(0, len(data)))]
    if kind == "flip":
        damaged = bytearray(data)
        for position in rng.integers(0, len(data), int(rng.integers(1, 12))):
            damaged[position] ^= int(rng.integers(1, 256))
        return bytes(damaged)
    if kind == "empty":
        return b""
    if kind == "huge":
        return _png_with_size(int(rng.integers(20_000, 70_000)), int(rng.integers(20_000, 70_000)))
    if kind == "wrong-mode":
        return _wrong_mode_file(rng)
    raise AssertionError(kind)


KINDS = ["truncate", "flip", "empty", "huge", "wrong-mode"]


def _write_case(root, number: int, rng: np.random.Generator) -> str:
    """Write one image/mask pair with one of them damaged; returns its list-file line."""
    image, mask = _good_pair(rng)
    kind = KINDS[number % len(KINDS)]
    if rng.random() < 0.5:
        image = _damage(image, rng, kind)
    else:
        mask = _damage(mask, rng, kind)
    (root / f"image{number}").write_bytes(image)
    (root / f"mask{number}").write_bytes(mask)
    return f"image{number} mask{number}\n"


def _load_directly(sample) -> DataError | None:
    """load_pair's DataError for ``sample`` (None when it loads); any other exception fails the test."""
    try:
        load_pair(sample.image_path, sample.mask_path, NUM_CLASSES, IGNORE)
    except DataError as error:
        assert sample.image_path in str(error) or sample.mask_path in str(error), str(error)
        return error
    except Exception as error:  # noqa: BLE001 - the point of the test is that nothing else escapes
        pytest.fail(f"{sample.origin} load_pair: {type(error).__name__}: {error}")
    return None


def _pipeline_outcomes(session: v1.Session, element, count: int) -> list[DataError | None]:
    """Fetch ``count`` elements one by one: the DataError of each (None when it loads), then the end."""
    outcomes = []
    for _ in range(count):
        try:
            with reader_errors():
                session.run(element)
            outcomes.append(None)
        except DataError as error:  # tf.data reports a failed element and goes on with the next one
            outcomes.append(error)
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"element {len(outcomes)} of the pipeline: {type(error).__name__}: {error}")
    with pytest.raises(tf.errors.OutOfRangeError):
        session.run(element)
    return outcomes


def test_every_damaged_file_fails_with_a_data_error_naming_it(tmp_path):
    rng = np.random.default_rng(2024)
    list_path = tmp_path / "list.txt"
    list_path.write_text("".join(_write_case(tmp_path, number, rng) for number in range(CASES)))
    samples = read_list_file(str(tmp_path), str(list_path))  # the files exist: listing them never fails
    direct = [_load_directly(sample) for sample in samples]
    with tf.Graph().as_default():
        training = train_dataset(samples, IDENTITY, (16, 16), 1, NUM_CLASSES, IGNORE, random_scale=True,
                                 random_mirror=True, seed=1, shuffle=False, repeat=False, num_parallel_calls=2)
        evaluation = eval_dataset(samples, IDENTITY, NUM_CLASSES, IGNORE)
        elements = [v1.data.make_one_shot_iterator(dataset).get_next() for dataset in (training, evaluation)]
        with v1.Session() as session:
            for element in elements:
                outcomes = _pipeline_outcomes(session, element, CASES)
                for sample, expected, actual in zip(samples, direct, outcomes, strict=True):
                    assert (actual is None) == (expected is None), (sample.origin, expected, actual)
                    if actual is not None:
                        assert str(actual) == f"{expected} (listed at {sample.origin})"
                        assert "\n" not in str(actual)
    refused = sum(error is not None for error in direct)
    assert refused > CASES // 2, refused  # most damage must be noticed

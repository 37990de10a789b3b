"""Our torch-free reader of ``torch.save`` files against ``torch.load``: zip and legacy formats, odd layouts,
refused pickles, damaged files, and reading with torch unimportable."""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

from refinenet_tf.errors import WeightsError
from refinenet_tf.weights.torch_file import LEGACY_MAGIC, LEGACY_PROTOCOL, load_torch_file
from refinenet_tf.weights.torch_state_dict import read_state_dict
from tests.conftest import REPO

torch = pytest.importorskip("torch", reason="torch writes the reference files these tests read")

FORMATS = pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
SYSTEM = f"{os.system.__module__}.system"


class _RunsCommandWhenUnpickled:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


def _save(obj, path, zip_format: bool) -> str:
    torch.save(obj, str(path), _use_new_zipfile_serialization=zip_format)
    return str(path)


def _tensors() -> dict:
    """Every kind of tensor a state dict may hold, several sharing one storage at offsets and strides."""
    generator = torch.Generator().manual_seed(0)
    shared = torch.randn(4, 6, generator=generator)
    special = [1.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-40, 3.0e38, -2.5]
    return {
        "conv.weight": torch.randn(3, 5, 2, 2, generator=generator),
        "half": torch.tensor(special[:5] + [6.0e-8, 65504.0, -2.5]).half(),
        "bfloat16": torch.tensor(special).to(torch.bfloat16),
        "bfloat16_matrix": torch.randn(3, 4, generator=generator).to(torch.bfloat16).t(),
        "double": torch.randn(5, generator=generator, dtype=torch.float64),
        "int64": torch.arange(-5, 10),
        "int32": torch.arange(7, dtype=torch.int32).reshape(7, 1),
        "uint8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "num_batches_tracked": torch.tensor(12345678901),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "shared": shared,
        "transposed": shared.t(),
        "slice": shared[1:3, 2:],
        "step": shared[::2, 1::3],
        "expanded": torch.arange(3.0).reshape(3, 1).expand(3, 4),
        "parameter": torch.nn.Parameter(torch.randn(2, 3, generator=generator)),
    }


def _expected(tensor) -> np.ndarray:
    tensor = tensor.detach()
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


def _assert_bitwise_equal(ours: np.ndarray, expected: np.ndarray, key: str) -> None:
    assert ours.dtype == expected.dtype, key
    assert ours.shape == expected.shape, key
    np.testing.assert_array_equal(ours, expected, err_msg=key)
    if expected.dtype.kind == "f":  # also -0.0 vs 0.0 and NaN payloads
        bits = np.dtype(f"u{expected.itemsize}")
        np.testing.assert_array_equal(ours.view(bits), expected.view(bits), err_msg=key)


@FORMATS
def test_every_tensor_kind_equals_torch_load_bit_for_bit(tmp_path, zip_format):
    path = _save(_tensors(), tmp_path / "tensors.pth", zip_format)
    ours = load_torch_file(path)
    theirs = torch.load(path, weights_only=True)
    assert list(ours) == list(theirs)
    for key, tensor in theirs.items():
        _assert_bitwise_equal(ours[key], _expected(tensor), key)
        assert ours[key].flags.writeable, key  # copies, not read-only views of the file's bytes
    assert ours["bfloat16"].dtype == np.float32 and ours["half"].dtype == np.float16
    assert ours["slice"].base is None and not np.shares_memory(ours["slice"], ours["shared"])


@FORMATS
def test_data_parallel_module_state_dict_and_wrapped_checkpoint(tmp_path, zip_format):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 2.0)
    parallel = torch.nn.DataParallel(model).state_dict()
    assert all(key.startswith("module.") for key in parallel)
    for name, obj in {"bare": parallel, "wrapped": {"state_dict": parallel, "epoch": 3, "best": 0.5},
                      "model": {"model": model.state_dict(), "optimizer": {"lr": 0.1}}}.items():
        path = _save(obj, tmp_path / f"{name}.pth", zip_format)
        arrays = read_state_dict(path)
        assert list(arrays) == list(model.state_dict()), name
        for key, tensor in model.state_dict().items():
            _assert_bitwise_equal(arrays[key], _expected(tensor), f"{name}: {key}")
    loaded = load_torch_file(str(tmp_path / "wrapped.pth"))
    assert (loaded["epoch"], loaded["best"]) == (3, 0.5)


@FORMATS
def test_non_tensor_entries_are_skipped_and_no_tensors_is_an_error(tmp_path, zip_format):
    path = _save({"weight": torch.ones(2), "note": "hello", "count": 3, "sizes": [1, 2]}, tmp_path / "mixed.pth",
                 zip_format)
    assert list(read_state_dict(path)) == ["weight"]
    empty = _save({"note": "hello", "epoch": 3}, tmp_path / "empty.pth", zip_format)
    with pytest.raises(WeightsError, match=r"^.*empty\.pth: holds no tensors$"):
        read_state_dict(empty)
    listed = _save([torch.ones(2)], tmp_path / "list.pth", zip_format)
    with pytest.raises(WeightsError, match=r"list\.pth: expected a state dict, found a list"):
        read_state_dict(listed)


def test_big_endian_zip_is_read_by_its_byteorder_record(tmp_path):
    tensors = {"weight": torch.randn(3, 4), "index": torch.arange(5)}
    little = _save(tensors, tmp_path / "little.pth", True)
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(little) as source, zipfile.ZipFile(big, "w") as target:
        storages = {f"little/data/{i}": tensor.numpy().dtype for i, tensor in enumerate(tensors.values())}
        for name in source.namelist():
            data = source.read(name)
            if name in storages:
                data = np.frombuffer(data, storages[name]).byteswap().tobytes()
            elif name == "little/byteorder":
                data = b"big"
            target.writestr(name.replace("little/", "big/", 1), data)
    arrays = read_state_dict(str(big))
    for key, tensor in tensors.items():
        _assert_bitwise_equal(arrays[key], tensor.numpy(), key)
        assert arrays[key].dtype.isnative, key


def _hand_made_zip(path, payload: bytes) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return str(path)


def _hand_made_legacy(path, payload: bytes, keys: list[str] | None = None) -> str:
    """Headers, the pickled object and the storage keys of a legacy file (the caller appends storages)."""
    with open(path, "wb") as file:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
            pickle.dump(header, file, protocol=2)
        file.write(payload)
        pickle.dump(keys or [], file, protocol=2)
    return str(path)


class _Storage:
    """Stands for a storage in a hand-written legacy pickle: pickled as its persistent id."""

    def __init__(self, pid: tuple):
        self.pid = pid


class _OldTensor:
    """Pickles as torch < 0.4 did: torch._utils._rebuild_tensor(storage, offset, size, stride)."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.args = storage, offset, size, stride

    def __reduce__(self):
        return torch._utils._rebuild_tensor, self.args


class _StoragePickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def test_legacy_storage_views_and_the_first_tensor_rebuilder(tmp_path):
    root = np.arange(10, dtype="<f4") * np.float32(1.5)
    whole = _Storage(("storage", torch.FloatStorage, "root", "cpu", 10, None))
    view = _Storage(("storage", torch.FloatStorage, "root", "cpu", 10, ("view", 3, 5)))
    payload = io.BytesIO()
    _StoragePickler(payload, protocol=2).dump({"whole": _OldTensor(whole, 2, (3,), (2,)),
                                               "view": _OldTensor(view, 1, (2, 2), (1, 2))})
    path = _hand_made_legacy(tmp_path / "old.pth", payload.getvalue(), ["root"])
    with open(path, "ab") as file:
        file.write(np.int64(10).astype("<i8").tobytes() + root.tobytes())
    arrays = read_state_dict(path)
    np.testing.assert_array_equal(arrays["whole"], root[[2, 4, 6]])
    np.testing.assert_array_equal(arrays["view"], [[root[4], root[6]], [root[5], root[7]]])
    theirs = torch.load(path, weights_only=True)
    for key, tensor in theirs.items():
        _assert_bitwise_equal(arrays[key], _expected(tensor), key)


@pytest.mark.parametrize("writer", ["torch-zip", "torch-legacy", "pickle-zip", "pickle-legacy"])
def test_a_pickle_that_calls_a_function_is_refused_without_running_it(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = {"conv1.weight": torch.zeros(1), "payload": _RunsCommandWhenUnpickled(str(marker))}
    path = tmp_path / "evil.pth"
    if writer.startswith("torch"):
        _save(payload, path, writer == "torch-zip")
    else:
        pickled = pickle.dumps({"payload": _RunsCommandWhenUnpickled(str(marker))}, protocol=4)
        (_hand_made_zip if writer == "pickle-zip" else _hand_made_legacy)(path, pickled)
    for read in (load_torch_file, read_state_dict):
        with pytest.raises(WeightsError, match=re.escape(f"{path}: refuses to load {SYSTEM}")) as error:
            read(str(path))
        assert "\n" not in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["builtins.eval", "torch._utils._rebuild_qtensor", "collections.Counter",
                                  "numpy.core.multiarray._reconstruct", "torch.float8_e4m3fn"])
def test_any_other_global_is_refused_by_name(tmp_path, name):
    module, attribute = name.rsplit(".", 1)
    payload = b"\x80\x02c" + f"{module}\n{attribute}\n".encode() + b")R."  # GLOBAL, EMPTY_TUPLE, REDUCE, STOP
    path = _hand_made_zip(tmp_path / "other.pth", payload)
    with pytest.raises(WeightsError, match=re.escape(f"other.pth: refuses to load {name}")):
        load_torch_file(path)


@FORMATS
def test_truncated_files_name_the_file(tmp_path, zip_format):
    data = open(_save(_tensors(), tmp_path / "whole.pth", zip_format), "rb").read()
    for length in (0, 1, 40, len(data) // 3, len(data) - 9):
        path = tmp_path / f"cut_{length}.pth"
        path.write_bytes(data[:length])
        with pytest.raises(WeightsError, match=re.escape(f"cut_{length}.pth: ")) as error:
            read_state_dict(str(path))
        assert "\n" not in str(error.value)


def test_a_storage_too_short_for_its_tensor_is_refused(tmp_path):
    source = _save({"weight": torch.randn(8, 8)}, tmp_path / "good.pth", True)
    damaged = tmp_path / "short.pth"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(damaged, "w") as target:
        for name in original.namelist():
            data = original.read(name)
            target.writestr(name.replace("good/", "short/", 1), data[:-4] if name == "good/data/0" else data)
    with pytest.raises(WeightsError, match=r"short\.pth: a tensor reaches past the end of its storage"):
        read_state_dict(str(damaged))


def test_other_files_name_the_file_and_the_problem(tmp_path):
    random_bytes = tmp_path / "random.pth"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(WeightsError, match=r"random\.pth: not a PyTorch weight file"):
        read_state_dict(str(random_bytes))

    numpy_file = tmp_path / "arrays.npy"
    np.save(numpy_file, np.ones(3))
    with pytest.raises(WeightsError, match=r"arrays\.npy: not a PyTorch weight file"):
        read_state_dict(str(numpy_file))

    plain_zip = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(WeightsError, match=r"plain\.zip: a zip file but not a PyTorch one"):
        read_state_dict(str(plain_zip))

    old_tar = tmp_path / "old.pth"
    with tarfile.open(old_tar, "w") as archive:
        for name in ("sys_info", "pickle", "storages", "tensors"):
            info = tarfile.TarInfo(name)
            info.size = 4
            archive.addfile(info, io.BytesIO(b"\x80\x02N."))
    with pytest.raises(WeightsError, match=r"old\.pth: the tar format of very old PyTorch versions"):
        read_state_dict(str(old_tar))

    scripted = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    with pytest.raises(WeightsError, match=r"scripted\.pt: a TorchScript archive"):
        read_state_dict(str(scripted))

    with pytest.raises(WeightsError, match=r"nothere\.pth: no such file$"):
        read_state_dict(str(tmp_path / "nothere.pth"))
    with pytest.raises(WeightsError, match="is a directory"):
        read_state_dict(str(tmp_path))


_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None
import numpy as np
from refinenet_tf.weights.torch_state_dict import read_state_dict
expected = np.load(sys.argv[1])
for path in sys.argv[2:]:
    arrays = read_state_dict(path)
    assert sorted(arrays) == sorted(expected.files), (path, sorted(arrays))
    for key in expected.files:
        assert arrays[key].dtype == expected[key].dtype, (path, key)
        np.testing.assert_array_equal(arrays[key], expected[key], err_msg=f"{path}: {key}")
assert sys.modules["torch"] is None
print("read", len(sys.argv) - 2, "files without torch")
"""


def test_state_dicts_are_read_with_torch_unimportable(tmp_path):
    tensors = _tensors()
    paths = [_save({f"module.{key}": value for key, value in tensors.items()}, tmp_path / "dp.pth", True),
             _save({"state_dict": tensors, "epoch": 3}, tmp_path / "legacy.pth", False)]
    expected = tmp_path / "expected.npz"
    np.savez(expected, **{key: _expected(tensor) for key, tensor in tensors.items()})
    result = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, str(expected), *paths], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "read 2 files without torch" in result.stdout

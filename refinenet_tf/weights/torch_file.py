"""Read files written by ``torch.save`` into NumPy arrays, without torch and without running pickled code.

Two formats are read: the zip archive torch >= 1.6 writes (``<prefix>/data.pkl``, raw storages in
``<prefix>/data/<key>``, ``<prefix>/byteorder``) and the legacy stream older versions wrote (pickled magic
number, protocol and system info, the object, the storage keys, then per key an int64 element count and
the little-endian bytes). The unpickler resolves only the names a state dict needs (tensor and parameter
rebuilders, storage classes, dtypes, ``OrderedDict``); any other global is refused with a
:class:`WeightsError` before it is called. Tensors become NumPy copies of their (offset, size, stride)
view of the storage; bfloat16 becomes float32 (exactly), other dtypes keep theirs.
"""

from __future__ import annotations

import collections
import functools
import io
import os
import pickle
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from refinenet_tf.errors import WeightsError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK\x03\x04"

# torch dtype name -> NumPy type code (little-endian storage order is applied separately).
DTYPE_CODES = {"float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "u2", "int64": "i8",
               "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1", "uint16": "u2", "uint32": "u4",
               "uint64": "u8", "bool": "b1", "complex64": "c8", "complex128": "c16"}
STORAGE_DTYPES = {"DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
                  "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                  "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
                  "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128"}
DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
                 "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}


@dataclass(frozen=True)
class _DType:
    """A storage class or ``torch.<dtype>`` global, standing for its element type."""
    name: str


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: str
    byte_offset: int = 0  # legacy storage views start inside their root storage


@dataclass(frozen=True)
class _TensorRef:
    """A tensor seen while unpickling; made an array once the storage bytes are at hand."""
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _TensorRef:
    """Stands for torch._utils._rebuild_tensor / _v2 (requires_grad, hooks and metadata do not matter here)."""
    if not isinstance(storage, _StorageRef):
        raise ValueError("tensor without a storage")
    return _TensorRef(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)), storage.dtype)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *_ignored) -> _TensorRef:
    """Stands for torch._utils._rebuild_tensor_v3: an untyped (byte) storage read as ``dtype``."""
    if not isinstance(dtype, _DType):
        raise ValueError("tensor without a dtype")
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    return _TensorRef(tensor.storage, tensor.offset, tensor.size, tensor.stride, dtype.name)


def _rebuild_parameter(data, *_ignored):
    """Stands for torch._utils._rebuild_parameter(_with_state): a parameter is its tensor."""
    return data


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """Stands for _codecs.encode, which protocol-2 pickles use for bytes objects."""
    if encoding != "latin1":
        raise ValueError(f"unexpected encoding {encoding!r}")
    return text.encode("latin1")


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
    ("torch.storage", "UntypedStorage"): _DType("uint8"),
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _latin1_bytes,
    **{(module, name): _DType(dtype) for name, dtype in STORAGE_DTYPES.items() for module in ("torch", "torch.cuda")},
    **{("torch", name): _DType(name) for name in DTYPE_CODES},
    **{("torch", alias): _DType(dtype) for alias, dtype in DTYPE_ALIASES.items()},
}


class _Refused(Exception):
    """A pickle asked for something outside ALLOWED_GLOBALS (raised through the unpickler untouched)."""


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only ALLOWED_GLOBALS; storages come back as references recorded in ``storages``."""

    def __init__(self, file: IO[bytes], legacy: bool):
        super().__init__(file, encoding="utf-8")  # as torch.load, for pickles written by Python 2
        self.legacy = legacy
        self.storages: dict[str, str] = {}  # key -> dtype name

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"refuses to load {module}.{name}: only tensors of NumPy types, numbers, strings and "
                           "containers are read, nothing pickled is run") from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        expected = 6 if self.legacy else 5
        if not (isinstance(pid, tuple) and len(pid) == expected and pid[0] == "storage"
                and isinstance(pid[1], _DType) and isinstance(pid[2], str)):
            raise ValueError(f"unexpected persistent id {pid!r:.80}")
        key, dtype = pid[2], pid[1].name
        if self.storages.setdefault(key, dtype) != dtype:
            raise ValueError(f"storage {key} is used with two element types")
        view = pid[5] if self.legacy else None
        if view is None:
            return _StorageRef(key, dtype)
        _view_key, offset, _size = view
        return _StorageRef(key, dtype, int(offset) * _itemsize(dtype))


def _itemsize(dtype: str) -> int:
    return np.dtype(DTYPE_CODES[dtype]).itemsize


def _unpickle(file: IO[bytes], legacy: bool) -> tuple[Any, dict[str, str]]:
    unpickler = _SafeUnpickler(file, legacy)
    return unpickler.load(), unpickler.storages


def load_torch_file(path: str) -> Any:
    """The object ``torch.save`` wrote to ``path``, with every tensor as a NumPy array.

    Raises :class:`WeightsError` naming the file for a missing, damaged or unsupported file and for a pickle
    that asks for anything but tensors, numbers, strings and containers.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(len(ZIP_MAGIC))
            file.seek(0)
            if not head:
                raise WeightsError(f"{path}: empty file")
            if head == ZIP_MAGIC:
                return _load_zip(file, path)
            return _load_legacy(file, path)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WeightsError(f"{path}: is a directory, not a weight file") from None
    except _Refused as error:
        raise WeightsError(f"{path}: {error}") from None
    except WeightsError:
        raise
    except Exception as error:  # a damaged pickle or zip raises many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path}: damaged or truncated PyTorch weight file: {reason}") from None


def _load_zip(file: IO[bytes], path: str) -> Any:
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise WeightsError(f"{path}: damaged or truncated zip file") from None
    with archive:
        names = set(archive.namelist())
        pickles = sorted((name for name in names if name.rsplit("/", 1)[-1] == "data.pkl"), key=len)
        prefix = pickles[0][:-len("data.pkl")] if pickles else ""
        if prefix + "constants.pkl" in names:
            raise WeightsError(f"{path}: a TorchScript archive (torch.jit.save), not a state dict: "
                               "save model.state_dict() with torch.save instead")
        if not pickles:
            raise WeightsError(f"{path}: a zip file but not a PyTorch one (no data.pkl)")
        byteorder = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise WeightsError(f"{path}: unknown byte order {byteorder!r:.20}")
        obj, _ = _unpickle(io.BytesIO(archive.read(pickles[0])), legacy=False)

        @functools.lru_cache(maxsize=1)  # views of one storage usually follow each other
        def storage_bytes(key: str) -> bytes:
            name = f"{prefix}data/{key}"
            if name not in names:
                raise WeightsError(f"{path}: storage {key} is missing")
            return archive.read(name)

        return _resolve(obj, storage_bytes, "<" if byteorder == "little" else ">", path)


def _load_legacy(file: IO[bytes], path: str) -> Any:
    try:
        magic, _ = _unpickle(file, legacy=True)
    except Exception:
        magic = None
    if magic != LEGACY_MAGIC:
        file.seek(0)
        if _is_tar(file):
            raise WeightsError(f"{path}: the tar format of very old PyTorch versions is not supported: "
                               "load it with that version and save it again")
        raise WeightsError(f"{path}: not a PyTorch weight file (neither the zip nor the legacy format)")
    protocol, _ = _unpickle(file, legacy=True)
    if protocol != LEGACY_PROTOCOL:
        raise WeightsError(f"{path}: unsupported legacy protocol version {protocol!r:.20}")
    _unpickle(file, legacy=True)  # system info: storages are little-endian whatever it says
    obj, storages = _unpickle(file, legacy=True)
    keys, _ = _unpickle(file, legacy=True)
    if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
        raise WeightsError(f"{path}: damaged legacy file (storage key list)")
    data = {}
    for key in keys:
        if key not in storages:
            raise WeightsError(f"{path}: storage {key} is not used by any tensor")
        count = int.from_bytes(_read_exactly(file, 8, path), "little", signed=True)
        if count < 0:
            raise WeightsError(f"{path}: damaged legacy file (storage {key} has {count} elements)")
        data[key] = _read_exactly(file, count * _itemsize(storages[key]), path)

    def storage_bytes(key: str) -> bytes:
        if key not in data:
            raise WeightsError(f"{path}: storage {key} is missing")
        return data[key]

    return _resolve(obj, storage_bytes, "<", path)


def _is_tar(file: IO[bytes]) -> bool:
    try:
        with tarfile.open(fileobj=file, mode="r:"):
            return True
    except tarfile.TarError:
        return False


def _read_exactly(file: IO[bytes], size: int, path: str) -> bytes:
    data = file.read(size) if size <= os.fstat(file.fileno()).st_size - file.tell() else b""
    if len(data) != size:
        raise WeightsError(f"{path}: truncated file (storage data ends early)")
    return data


def _resolve(obj: Any, storage_bytes: Callable[[str], bytes], order: str, path: str) -> Any:
    """``obj`` with every _TensorRef replaced by its array (containers rebuilt as dict, list, tuple)."""
    memo: dict[int, Any] = {}

    def visit(value: Any) -> Any:
        if id(value) in memo:
            return memo[id(value)]
        if isinstance(value, _TensorRef):
            result = memo[id(value)] = _to_array(value, storage_bytes(value.storage.key), order, path)
        elif isinstance(value, dict):
            result = memo[id(value)] = {}
            result.update((key, visit(item)) for key, item in value.items())
        elif isinstance(value, list):
            result = memo[id(value)] = []
            result.extend(visit(item) for item in value)
        elif isinstance(value, tuple):
            result = memo[id(value)] = tuple(visit(item) for item in value)
        else:
            result = value
        return result

    return visit(obj)


def _to_array(tensor: _TensorRef, raw: bytes, order: str, path: str) -> np.ndarray:
    """A copy of the tensor's strided view of its storage, in native byte order."""
    dtype = np.dtype(order + DTYPE_CODES[tensor.dtype])
    buffer = memoryview(raw)[tensor.storage.byte_offset:]
    flat = np.frombuffer(buffer, dtype, len(buffer) // dtype.itemsize)
    size, stride = tensor.size, tensor.stride
    if len(size) != len(stride) or min((tensor.offset, *size, *stride)) < 0:
        raise WeightsError(f"{path}: damaged tensor layout (offset {tensor.offset}, size {size}, stride {stride})")
    if 0 in size:
        array = np.zeros(size, dtype.newbyteorder("="))
    else:
        last = tensor.offset + sum((n - 1) * step for n, step in zip(size, stride, strict=True))
        if last >= flat.size:
            raise WeightsError(f"{path}: a tensor reaches past the end of its storage (damaged file)")
        view = np.lib.stride_tricks.as_strided(flat[tensor.offset:], size, [step * dtype.itemsize for step in stride])
        array = view.astype(dtype.newbyteorder("="), copy=True)
    if tensor.dtype == "bfloat16":  # the upper half of a float32: exact
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array

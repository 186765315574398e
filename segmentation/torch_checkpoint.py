"""Reads a PyTorch state dict saved in the legacy (pre-zip) format with Python's pickle and NumPy alone, without torch.

The legacy format is a sequence of pickles: a magic number, a protocol version, system information, the state dict
(its tensors refer to storages by persistent id), the list of storage keys; then each storage's raw little-endian
data, preceded by its int64 element count. Unpickling executes whatever the file names, so the unpickler here
resolves only the names a state dict of tensors needs (the tensor-rebuild function, the storage types and
`collections.OrderedDict`) and refuses every other one, naming it.
"""

import collections
import pickle
import struct

import numpy as np

_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
_PROTOCOL_VERSION = 1001
_ZIP_SIGNATURE = b"PK\x03\x04"
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class TorchCheckpointError(ValueError):
  """The file is not a legacy PyTorch state dict of plain tensors; the message names the file and what was wrong."""


_StorageType = collections.namedtuple("_StorageType", "name dtype")
_TensorView = collections.namedtuple("_TensorView", "key offset shape strides")


def _rebuild_tensor(storage_key, offset, shape, strides, *unused):
  del unused  # requires_grad, backward hooks, metadata
  return _TensorView(storage_key, offset, tuple(shape), tuple(strides))


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the names a state dict of tensors needs; records the storages its tensors refer to."""

  def __init__(self, file, path):
    super().__init__(file)
    self.path = path
    self.storages = {}  # key -> (dtype, element count)

  def find_class(self, module, name):
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return _rebuild_tensor
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name, _STORAGE_DTYPES[name])
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    raise TorchCheckpointError(f"{self.path} refers to {module}.{name}; only a state dict of plain tensors is read "
                               "(the tensor-rebuild function, storage types, OrderedDict): refusing to unpickle it.")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
      raise TorchCheckpointError(f"{self.path}: unexpected persistent id {str(pid)[:80]} (expected a storage).")
    _, storage_type, key, _, count = pid[:5]
    self.storages[key] = (storage_type.dtype, int(count))
    return key


def read_state_dict(path):
  """{name: np.ndarray} of the legacy-format PyTorch state dict at `path` (no code from the file is run).

  Raises:
    TorchCheckpointError: naming `path`: a zip-format (PyTorch >= 1.6) file, a truncated file, or anything that
      is not a state dict of tensors.
  """
  with open(path, "rb") as f:
    if f.read(4) == _ZIP_SIGNATURE:
      raise TorchCheckpointError(f"{path} is a zip-format PyTorch file (torch.save since 1.6); only the legacy format "
                                 "is read here.")
    f.seek(0)
    try:
      magic = _RestrictedUnpickler(f, path).load()
      version = _RestrictedUnpickler(f, path).load()
      if magic != _MAGIC_NUMBER or version != _PROTOCOL_VERSION:
        raise TorchCheckpointError(f"{path} is not a legacy PyTorch file (magic number {magic!r}, protocol "
                                   f"{version!r}).")
      _RestrictedUnpickler(f, path).load()  # system information (byte order, type sizes)
      unpickler = _RestrictedUnpickler(f, path)
      state = unpickler.load()
      keys = _RestrictedUnpickler(f, path).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
      if isinstance(e, TorchCheckpointError):
        raise
      raise TorchCheckpointError(f"{path} is not a readable legacy PyTorch file: {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, _TensorView) for v in state.values()):
      raise TorchCheckpointError(f"{path} does not hold a state dict of tensors.")
    data = {}
    for key in keys:
      dtype, count = unpickler.storages[key]
      header = f.read(8)
      if len(header) != 8:
        raise TorchCheckpointError(f"{path} is truncated: storage {key} is missing.")
      (stored,) = struct.unpack("<q", header)
      if stored != count:
        raise TorchCheckpointError(f"{path}: storage {key} holds {stored} values, its tensors expect {count}.")
      raw = f.read(count * np.dtype(dtype).itemsize)
      if len(raw) != count * np.dtype(dtype).itemsize:
        raise TorchCheckpointError(f"{path} is truncated inside storage {key}.")
      data[key] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
  arrays = {}
  for name, view in state.items():
    storage = data[view.key]
    itemsize = storage.dtype.itemsize
    end = view.offset + sum((s - 1) * st for s, st in zip(view.shape, view.strides)) + 1 if view.shape else (
        view.offset + 1)
    if min(view.shape, default=1) > 0 and end > storage.size:
      raise TorchCheckpointError(f"{path}: tensor {name} reaches past its storage.")
    arrays[name] = np.lib.stride_tricks.as_strided(storage[view.offset:], shape=view.shape,
                                                   strides=[s * itemsize for s in view.strides]).astype(
                                                       storage.dtype.newbyteorder("="), copy=True)
  return arrays

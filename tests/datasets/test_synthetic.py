"""The synthetic generator: ScanNet layout and formats, exact and self-consistent ground truth, determinism, class
statistics, camera motion, skip / rewrite semantics, argument checks and the command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from datasets import ground_truth
from datasets import labels
from datasets.readers import scannet
from datasets.synthetic import camera as synthetic_camera
from datasets.synthetic import generator as synthetic
from datasets.synthetic import raycast
from datasets.synthetic import scene as synthetic_scene
from depth_motion import geometry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEIGHT, WIDTH = 48, 64
NUM_SCENES, NUM_FRAMES, SEED = 4, 6, 0


@pytest.fixture(scope="module", params=synthetic_camera.MOTIONS)
def dataset(tmp_path_factory, request):
  """(root, scene folders, camera motion) of a small generated video, once per camera motion."""
  root = str(tmp_path_factory.mktemp("synthetic"))
  return root, synthetic.generate(root, NUM_SCENES, NUM_FRAMES, HEIGHT, WIDTH, seed=SEED, motion=request.param), \
      request.param


def _read_frame(scene_dir, index):
  color = np.asarray(Image.open(os.path.join(scene_dir, "color", f"{index}.png")))
  depth_mm = np.asarray(Image.open(os.path.join(scene_dir, "depth", f"{index}.png")))
  label = np.asarray(Image.open(os.path.join(scene_dir, "label", f"{index}.png")))
  pose = np.loadtxt(os.path.join(scene_dir, "pose", f"{index}.txt"))
  return color, depth_mm, label, pose


def _intrinsics(scene_dir):
  return np.loadtxt(os.path.join(scene_dir, "intrinsic", "intrinsic_color.txt"))[:3, :3]


def _all_files(root):
  files = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        files[os.path.relpath(path, root)] = f.read()
  return files


def test_files_and_formats_follow_the_scannet_layout(dataset):
  root, scene_dirs, motion = dataset
  assert [os.path.basename(d) for d in scene_dirs] == [f"scene{i:04d}_00" for i in range(NUM_SCENES)]
  with open(os.path.join(root, "scannetv2_train.txt")) as f:
    train = f.read().split()
  with open(os.path.join(root, "scannetv2_val.txt")) as f:
    val = f.read().split()
  assert val and train and not set(train) & set(val)
  assert sorted(train + val) == [os.path.basename(d) for d in scene_dirs]
  for scene_dir in scene_dirs:
    for folder, extension in (("color", "png"), ("depth", "png"), ("label", "png"), ("pose", "txt")):
      assert sorted(os.listdir(os.path.join(scene_dir, folder))) == sorted(
          f"{i}.{extension}" for i in range(NUM_FRAMES))
    color = Image.open(os.path.join(scene_dir, "color", "0.png"))
    depth = Image.open(os.path.join(scene_dir, "depth", "0.png"))
    label = Image.open(os.path.join(scene_dir, "label", "0.png"))
    assert (color.mode, color.size) == ("RGB", (WIDTH, HEIGHT))
    assert (depth.mode, depth.size) == ("I;16", (WIDTH, HEIGHT))
    assert (label.mode, label.size) == ("L", (WIDTH, HEIGHT))
    intrinsics = {name: np.loadtxt(os.path.join(scene_dir, "intrinsic", f"intrinsic_{name}.txt"))
                  for name in ("color", "depth")}
    np.testing.assert_array_equal(intrinsics["color"], intrinsics["depth"])
    k = intrinsics["color"]
    assert k.shape == (4, 4)
    np.testing.assert_array_equal(k[3], [0, 0, 0, 1])
    np.testing.assert_array_equal(k[:3, 3], 0)
    assert k[0, 1] == k[1, 0] == k[2, 0] == k[2, 1] == 0 and k[2, 2] == 1
    horizontal_fov = np.degrees(2 * np.arctan(WIDTH / 2 / k[0, 0]))
    assert 54 <= horizontal_fov <= 64
    assert abs(k[0, 2] - (WIDTH - 1) / 2) < 0.02 * WIDTH and abs(k[1, 2] - (HEIGHT - 1) / 2) < 0.02 * HEIGHT
    for index in range(NUM_FRAMES):
      _, depth_mm, labels, pose = _read_frame(scene_dir, index)
      assert depth_mm.dtype == np.uint16 and labels.dtype == np.uint8
      assert depth_mm.min() > 150 and depth_mm.max() < 12000  # metres in a room, nothing missing, none too close
      assert pose.shape == (4, 4)
      np.testing.assert_array_equal(pose[3], [0, 0, 0, 1])
      np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-8)
      assert np.linalg.det(pose[:3, :3]) > 0
    with open(os.path.join(scene_dir, synthetic.SCENE_DESCRIPTION)) as f:
      description = json.load(f)
    assert description["generator"]["height"] == HEIGHT and description["scene"]["num_frames"] == NUM_FRAMES


def test_files_hold_exactly_what_was_rendered(dataset):
  _, scene_dirs, motion = dataset
  for index in (0, NUM_SCENES - 1):
    scene = synthetic.make_scene(SEED, index, NUM_FRAMES, HEIGHT, WIDTH, motion=motion)
    np.testing.assert_array_equal(_intrinsics(scene_dirs[index]), scene.intrinsics)
    renderer = raycast.Renderer(scene)
    for frame_id in (0, NUM_FRAMES - 1):
      frame = renderer.render(scene.poses[frame_id])
      color, depth_mm, label, pose = _read_frame(scene_dirs[index], frame_id)
      np.testing.assert_array_equal(pose, scene.poses[frame_id])
      np.testing.assert_array_equal(color, frame.color)
      np.testing.assert_array_equal(label, frame.label)
      # Depth in millimetres is the rendered z-depth of the hit, rounded.
      assert np.max(np.abs(depth_mm / 1000.0 - frame.depth)) <= 0.0005 + 1e-6


def test_scannet_reader_round_trip(dataset):
  """The ScanNet reader (the path real data takes) returns exactly what the generator rendered."""
  root, scene_dirs, motion = dataset
  scenes = scannet.read_scenes(root)
  assert [s.directory for s in scenes] == scene_dirs
  train, val = scannet.read_scenes(root, "train"), scannet.read_scenes(root, "val")
  assert sorted(s.name for s in train + val) == sorted(s.name for s in scenes)
  scene_index = scenes[1]
  scene = synthetic.make_scene(SEED, 1, NUM_FRAMES, HEIGHT, WIDTH, motion=motion)
  np.testing.assert_allclose(scene_index.intrinsics, scene.intrinsics, atol=1e-6)
  np.testing.assert_allclose(scene_index.poses, scene.poses, atol=1e-6)
  frame = raycast.Renderer(scene).render(scene.poses[2])
  loaded = scene_index.load(2, (HEIGHT, WIDTH))
  np.testing.assert_allclose(loaded["image"].numpy() * 255.0, frame.color, atol=1e-3)
  np.testing.assert_allclose(loaded["depth"], frame.depth, atol=0.0005 + 1e-6)
  np.testing.assert_array_equal(loaded["label"], labels.NYU40_TO_CLASS[frame.label])
  np.testing.assert_allclose(loaded["intrinsics"], scene.intrinsics, atol=1e-5)


def _reference_cast(scene, pose):
  """Nearest hit of every pixel's ray, brute force in float64: every ray against every primitive, no culling.

  Returns ([H, W] z-depth, [H, W] primitive index).
  """
  ys, xs = np.mgrid[0:scene.height, 0:scene.width]
  pixels = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3).astype(np.float64)
  directions = pixels @ np.linalg.inv(scene.intrinsics).T @ pose[:3, :3].T  # camera z = 1: t is the z-depth
  best = np.full(len(directions), np.inf)
  best_index = np.full(len(directions), -1)
  with np.errstate(divide="ignore", invalid="ignore"):
    for index, primitive in enumerate(scene.primitives):
      c, s = np.cos(primitive.yaw), np.sin(primitive.yaw)
      to_local = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
      o = to_local @ (pose[:3, 3] - primitive.center)
      d = directions @ to_local.T
      half = np.asarray(primitive.half_size)
      t_low, t_high = (-half - o) / d, (half - o) / d
      if index == 0:  # the room, from inside: the nearest exit
        t = np.min(np.maximum(t_low, t_high), axis=1)
      elif primitive.kind == synthetic_scene.BOX:
        t_near = np.max(np.minimum(t_low, t_high), axis=1)
        t_far = np.min(np.maximum(t_low, t_high), axis=1)
        t = np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)
      else:
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = 2 * (o[0] * d[:, 0] + o[1] * d[:, 1])
        root = np.sqrt(b * b - 4 * a * (o[0] ** 2 + o[1] ** 2 - half[0] ** 2))
        candidates = [(-b - root) / (2 * a), (-b + root) / (2 * a), t_low[:, 2], t_high[:, 2]]
        t = np.full(len(d), np.inf)
        for i, candidate in enumerate(candidates):
          point = o + candidate[:, None] * d
          on_side = np.abs(point[:, 2]) <= half[2] + 1e-9
          on_cap = point[:, 0] ** 2 + point[:, 1] ** 2 <= half[0] ** 2 + 1e-9
          ok = (candidate > 0) & (on_side if i < 2 else on_cap)
          t = np.where(ok & (candidate < t), candidate, t)
      closer = t < best
      best = np.where(closer, t, best)
      best_index = np.where(closer, index, best_index)
  return best.reshape(scene.height, scene.width), best_index.reshape(scene.height, scene.width)


def test_ray_casting_matches_a_brute_force_reference():
  """Culling rectangles, quarter-turn boxes, rotated boxes and cylinders: the nearest hit of every pixel."""
  compared = 0
  for index in range(4):
    scene = synthetic.make_scene(SEED, index, 40, 30, 40)
    renderer = raycast.Renderer(scene)
    for pose in scene.poses[::8]:
      depth, ids, _ = renderer.cast(pose)
      expected_depth, expected_ids = _reference_cast(scene, pose)
      np.testing.assert_allclose(depth, expected_depth, rtol=1e-5, atol=1e-5)
      # Ties (touching parts, e.g. a mattress on a bed frame) may go either way; anything else must agree.
      assert np.mean(ids == expected_ids) > 0.995
      compared += int(np.sum(ids > 0))
  assert compared > 2000  # enough object pixels were checked


def test_depth_pose_and_intrinsics_put_surfaces_where_the_room_is(dataset):
  """Unprojected with the written K and pose, floor pixels lie on z = 0, walls on the room's sides, ceiling at Lz."""
  _, scene_dirs, motion = dataset
  checked = {synthetic_scene.FLOOR: 0, synthetic_scene.WALL: 0}
  for scene_dir in scene_dirs:
    with open(os.path.join(scene_dir, synthetic.SCENE_DESCRIPTION)) as f:
      lx, ly, lz = json.load(f)["scene"]["room_size"]
    k_inv = np.linalg.inv(_intrinsics(scene_dir))
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ k_inv.T
    for index in range(0, NUM_FRAMES, 2):
      _, depth_mm, label, pose = _read_frame(scene_dir, index)
      camera_points = rays * (depth_mm / 1000.0)[..., None]
      world = camera_points @ pose[:3, :3].T + pose[:3, 3]
      floor = world[label == synthetic_scene.FLOOR]
      np.testing.assert_allclose(floor[:, 2], 0.0, atol=2e-3)
      ceiling = world[label == synthetic_scene.CEILING]
      np.testing.assert_allclose(ceiling[:, 2], lz, atol=2e-3)
      wall = world[label == synthetic_scene.WALL]
      to_wall = np.min(np.abs(np.stack([wall[:, 0], wall[:, 0] - lx, wall[:, 1], wall[:, 1] - ly])), axis=0)
      assert np.all(to_wall < 2e-3)
      checked[synthetic_scene.FLOOR] += len(floor)
      checked[synthetic_scene.WALL] += len(wall)
  assert min(checked.values()) > 1000


def test_next_frame_warped_with_ground_truth_reproduces_the_frame(dataset):
  """Frame t+1 resampled at the ground-truth correspondences of frame t reproduces frame t where visible."""
  _, scene_dirs, motion = dataset
  moving_pairs, warped_errors, still_errors = 0, [], []
  for scene_dir in scene_dirs:
    k = _intrinsics(scene_dir)[None].astype(np.float32)
    frames = [_read_frame(scene_dir, i) for i in range(NUM_FRAMES)]
    for (color0, depth0, label0, pose0), (color1, depth1, label1, pose1) in zip(frames, frames[1:]):
      match = ground_truth.correspondence((depth0 / 1000.0)[None], pose0[None], pose1[None], k,
                                          target_depth=(depth1 / 1000.0)[None])
      visible = match.visible[0].numpy()
      assert visible.mean() > 0.5
      coords = geometry.coords_from_flow(match.flow)
      warped = geometry.resample(color1[None].astype(np.float32), coords)[0].numpy()
      warped_error = np.abs(warped - color0)[visible].mean()
      still_error = np.abs(color1.astype(np.float32) - color0)[visible].mean()
      # Labels: nearest-neighbour warp.
      nearest = np.round(coords[0].numpy()).astype(int)
      warped_label = label1[np.clip(nearest[..., 1], 0, HEIGHT - 1), np.clip(nearest[..., 0], 0, WIDTH - 1)]
      label_agreement = np.mean(warped_label[visible] == label0[visible])
      assert label_agreement > 0.97
      assert label_agreement >= np.mean(label1[visible] == label0[visible])
      if np.linalg.norm(match.flow[0].numpy(), axis=-1)[visible].mean() > 1.5:  # the camera moved enough to tell
        moving_pairs += 1
        warped_errors.append(warped_error)
        still_errors.append(still_error)
        # What is left is bilinear resampling of texture detail and of aliased object edges (one ray per pixel).
        assert warped_error < still_error / 3, (scene_dir, warped_error, still_error)
  assert moving_pairs >= 5
  assert np.sum(warped_errors) < 0.25 * np.sum(still_errors)
  assert np.mean(warped_errors) < 4.0  # 8-bit levels: shading is view-independent and texture is on the surface


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
  arguments = dict(num_scenes=2, frames_per_scene=3, height=24, width=32)
  synthetic.generate(tmp_path / "a", seed=3, **arguments)
  synthetic.generate(tmp_path / "b", seed=3, **arguments)
  synthetic.generate(tmp_path / "c", seed=4, **arguments)
  a, b, c = (_all_files(tmp_path / name) for name in "abc")
  assert a == b
  assert a.keys() == c.keys()
  for folder in ("color", "depth", "pose"):
    path = os.path.join("scene0000_00", folder, "1." + ("txt" if folder == "pose" else "png"))
    assert a[path] != c[path]


def test_complete_scenes_are_skipped_and_incomplete_ones_rendered_again(tmp_path):
  arguments = dict(frames_per_scene=2, height=16, width=20, seed=1)
  synthetic.generate(tmp_path, 2, **arguments)
  original = _all_files(tmp_path)
  stamps = {p: os.stat(tmp_path / p).st_mtime_ns for p in original}
  # Interrupted: a truncated frame and no description.
  os.remove(tmp_path / "scene0001_00" / synthetic.SCENE_DESCRIPTION)
  with open(tmp_path / "scene0001_00" / "color" / "1.png", "wb") as f:
    f.write(b"\x89PNG")
  synthetic.generate(tmp_path, 3, **arguments)
  after = _all_files(tmp_path)
  assert {p: after[p] for p in original if p.startswith("scene")} == {
      p: v for p, v in original.items() if p.startswith("scene")}
  assert all(os.stat(tmp_path / p).st_mtime_ns == stamps[p] for p in original if p.startswith("scene0000_00"))
  assert os.stat(tmp_path / "scene0001_00" / "color" / "0.png").st_mtime_ns != stamps["scene0001_00/color/0.png"]
  assert "scene0002_00/color/1.png" in after
  assert not any(".tmp" in p for p in after)
  # A complete scene rendered with other parameters is not silently mixed in...
  with pytest.raises(ValueError, match="other parameters"):
    synthetic.generate(tmp_path, 1, frames_per_scene=2, height=18, width=20, seed=1)
  # ... unless asked for.
  synthetic.generate(tmp_path, 1, frames_per_scene=2, height=18, width=20, seed=1, overwrite=True)
  assert Image.open(tmp_path / "scene0000_00" / "color" / "0.png").size == (20, 18)


def test_color_noise_leaves_ground_truth_exact(tmp_path):
  arguments = dict(num_scenes=1, frames_per_scene=2, height=16, width=20, seed=2)
  synthetic.generate(tmp_path / "clean", **arguments)
  synthetic.generate(tmp_path / "noisy", color_noise=3.0, **arguments)
  clean, noisy = _all_files(tmp_path / "clean"), _all_files(tmp_path / "noisy")
  for path in clean:
    if "/color/" in path:
      assert clean[path] != noisy[path]
    elif path.endswith((".png", ".txt")):
      assert clean[path] == noisy[path], path


def test_class_statistics_are_imbalanced_like_real_rooms():
  pixels, present = {}, {}
  num_scenes = 40
  for index in range(num_scenes):
    scene = synthetic.make_scene(SEED, index, 20, 24, 32)
    for label in {label for _, label in scene.objects}:
      present[label] = present.get(label, 0) + 1
    if index < 20:
      renderer = raycast.Renderer(scene)
      for pose in scene.poses[::5]:
        ids, counts = np.unique(renderer.render(pose).label, return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist()):
          pixels[i] = pixels.get(i, 0) + c
  by_frequency = sorted(pixels, key=pixels.get, reverse=True)
  assert set(by_frequency[:3]) >= {synthetic_scene.WALL, synthetic_scene.FLOOR}
  assert len(set(by_frequency) & set(synthetic_scene.BENCHMARK_NYU40_IDS)) >= 8
  assert all(1 <= label <= 40 for label in pixels)
  for rare in (synthetic_scene.PICTURE, synthetic_scene.DOOR, synthetic_scene.SINK, synthetic_scene.TOILET):
    assert present.get(rare, 0) < 0.5 * num_scenes
  for common in (synthetic_scene.CABINET, synthetic_scene.WINDOW):
    assert present.get(common, 0) > 0.5 * num_scenes
  assert len(set(present) & set(synthetic_scene.BENCHMARK_NYU40_IDS)) >= 16


@pytest.mark.parametrize("motion, speeds, angular_speeds, lowest", [
    ("handheld", (0.1, 0.7), (5.0, 45.0), 1.0),  # ScanNet's handheld scans: rotation-dominated
    ("dolly", (0.4, 1.1), (0.5, 6.0), 0.7),  # translation-dominated: 5-10 cm and under 0.6 deg per frame
])
def test_camera_moves_as_its_motion_says_and_keeps_clear_of_the_room(motion, speeds, angular_speeds, lowest):
  fps = 10.0
  for index in range(6):
    scene = synthetic.make_scene(SEED, index, 300, 24, 32, fps=fps, motion=motion)
    positions = scene.poses[:, :3, 3]
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=-1).mean() * fps
    relative = np.einsum("nji,njk->nik", scene.poses[:-1, :3, :3], scene.poses[1:, :3, :3])
    angles = np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1))
    angular_speed = np.degrees(angles.mean() * fps)
    assert speeds[0] < speed < speeds[1], speed
    assert angular_speeds[0] < angular_speed < angular_speeds[1], angular_speed
    # Smooth: no frame-to-frame jumps far beyond the mean.
    assert np.max(angles) < 5 * angles.mean() + 1e-3
    lx, ly, lz = scene.room_size
    margin = synthetic_camera.SMALL_ROOM_WALL_MARGIN - 0.05
    assert np.all((positions[:, 0] > margin) & (positions[:, 0] < lx - margin))
    assert np.all((positions[:, 1] > margin) & (positions[:, 1] < ly - margin))
    assert np.all((positions[:, 2] > lowest) & (positions[:, 2] < lz - 0.5))
    # Horizontal distance from the camera to every object's box.
    for primitive in scene.primitives[1:]:
      if primitive.half_size[2] < 0.01:  # flat (a floor mat): the camera may pass over it
        continue
      c, s = np.cos(primitive.yaw), np.sin(primitive.yaw)
      dx, dy = positions[:, 0] - primitive.center[0], positions[:, 1] - primitive.center[1]
      local = np.abs(np.stack([c * dx + s * dy, -s * dx + c * dy], -1)) - primitive.half_size[:2]
      distance = np.linalg.norm(np.maximum(local, 0.0), axis=-1)
      assert np.all(distance > synthetic_scene.LOW_OBJECT_CLEARANCE - 0.08)


@pytest.mark.parametrize("arguments, message", [
    (dict(num_scenes=0), "num_scenes=0"),
    (dict(frames_per_scene=-2), "frames_per_scene=-2"),
    (dict(height=0), "height=0"),
    (dict(width=-64), "width=-64"),
    (dict(height=12.5), "height=12.5"),
    (dict(num_scenes=True), "num_scenes=True"),
    (dict(seed=-1), "seed=-1"),
    (dict(fps=0.0), "fps=0.0"),
    (dict(color_noise=-1.0), "color_noise=-1.0"),
    (dict(motion="walk"), "motion='walk'"),
    (dict(output_dir=""), "output_dir"),
])
def test_rejects_bad_arguments_naming_them(tmp_path, arguments, message):
  call = dict(output_dir=tmp_path, num_scenes=1, frames_per_scene=2, height=16, width=20, seed=0)
  call.update(arguments)
  with pytest.raises(ValueError, match=message):
    synthetic.generate(**call)
  assert not os.listdir(tmp_path)


def test_command_line_writes_what_the_api_writes(tmp_path):
  command = [sys.executable, "-m", "datasets.synthetic", f"--output_dir={tmp_path / 'cli'}", "--num_scenes=2",
             "--frames_per_scene=2", "--height=16", "--width=20", "--seed=5"]
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "scene0001_00" in result.stderr  # progress is logged per scene
  synthetic.generate(tmp_path / "api", 2, 2, 16, 20, seed=5)
  assert _all_files(tmp_path / "cli") == _all_files(tmp_path / "api")
  result = subprocess.run(command[:-2] + ["--height=0", "--width=20"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode != 0
  assert "height must be a positive integer. Received: height=0" in result.stderr

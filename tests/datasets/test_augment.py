"""Augmentation keeps K, depth and poses consistent with the augmented pixels."""

import numpy as np
import pytest
import tensorflow as tf

from datasets import augment
from depth_motion import geometry

T, HEIGHT, WIDTH = 2, 24, 32
K = np.array([[30.0, 0, 15.2], [0, 28.0, 11.7], [0, 0, 1]], np.float32)
WORLD_POINTS = np.array([[0.3, -0.2, 2.0], [-0.5, 0.4, 3.5], [0.05, 0.1, 1.2], [0.6, 0.3, 2.5]], np.float32)


def _pose(angles, translation):
  pose = np.eye(4, dtype=np.float32)
  pose[:3, :3] = geometry.matrix_from_angles(np.array(angles, np.float32)).numpy()
  pose[:3, 3] = translation
  return pose


def _ramp_clip():
  """Image channels 0 and 1 hold each pixel's own (x, y) (scaled to [0, 1]); depth holds x + 1 for nearest checks."""
  grid = geometry.pixel_grid(HEIGHT, WIDTH).numpy()
  image = np.concatenate([grid[..., :1] / WIDTH, grid[..., 1:] / HEIGHT, np.full_like(grid[..., :1], 0.5)], -1)
  poses = np.stack([_pose([0.02, -0.03, 0.01], [0.1, 0.0, -0.2]), _pose([0.0, 0.05, 0.0], [0.2, 0.05, -0.1])])
  return {"image": tf.constant(np.broadcast_to(image, (T, HEIGHT, WIDTH, 3))),
          "depth": tf.constant(np.broadcast_to(grid[..., 0] + 1.0, (T, HEIGHT, WIDTH))),
          "label": tf.constant(np.broadcast_to(np.arange(WIDTH, dtype=np.int32), (T, HEIGHT, WIDTH))),
          "pose": tf.constant(poses), "intrinsics": tf.constant(K), "has_label": tf.constant([True, False])}


def _project(world_points, pose, intrinsics):
  """Pixels and z-depth of world points seen by a camera-to-world pose."""
  camera = np.linalg.inv(pose)
  points = world_points @ camera[:3, :3].T + camera[:3, 3]
  pixels = geometry.project(tf.constant(points[np.newaxis, np.newaxis], tf.float32),
                            tf.constant(intrinsics[np.newaxis]))[0, 0].numpy()
  return pixels, points[:, 2]


def _seen_original_pixel(image, pixels):
  """The original (x, y) that a ramp image shows at `pixels` (bilinear: exact inside the image)."""
  value = geometry.resample(image[tf.newaxis], pixels[np.newaxis, np.newaxis], boundary="border")[0, 0].numpy()
  return value[:, :2] * [WIDTH, HEIGHT]


def _check_reprojection(original, augmented, mirrored):
  world = WORLD_POINTS * ([-1.0, 1.0, 1.0] if mirrored else 1.0)
  for t in range(T):
    expected, _ = _project(WORLD_POINTS, original["pose"][t].numpy(), original["intrinsics"].numpy())
    pixels, z = _project(world, augmented["pose"][t].numpy(), augmented["intrinsics"].numpy())
    inside = geometry.inside_image(pixels, HEIGHT, WIDTH).numpy()  # a crop may cut some points out
    assert inside.sum() >= 2
    np.testing.assert_allclose(_seen_original_pixel(augmented["image"][t], pixels)[inside], expected[inside],
                               atol=2e-3)
    # Depth is a property of the 3-D point: the same z in the augmented camera.
    _, z_original = _project(WORLD_POINTS, original["pose"][t].numpy(), original["intrinsics"].numpy())
    np.testing.assert_allclose(z, z_original, rtol=1e-5)


def test_flip_reprojects_the_mirrored_scene():
  clip = _ramp_clip()
  flipped = augment.flip_clip(clip)
  _check_reprojection(clip, flipped, mirrored=True)
  np.testing.assert_array_equal(flipped["label"][0, 0], np.arange(WIDTH)[::-1])
  np.testing.assert_array_equal(flipped["has_label"], clip["has_label"])
  # Relative motion between the flipped frames is the mirrored motion.
  motion = geometry.motion_from_poses(clip["pose"][:1], clip["pose"][1:])
  flipped_motion = geometry.motion_from_poses(flipped["pose"][:1], flipped["pose"][1:])
  for a, b in zip(geometry.mirror_motion(*motion), flipped_motion):
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("scale, offset", [(1.0, (0, 0)), (1.25, (3, 5)), (1.5, (12, 16))])
def test_scale_and_crop_reprojects(scale, offset):
  clip = _ramp_clip()
  out = augment.scale_and_crop_clip(clip, scale, offset)
  assert out["image"].shape == clip["image"].shape and out["label"].dtype == tf.int32
  _check_reprojection(clip, out, mirrored=False)
  # Nearest-neighbour label/depth keep values of the original image (no blending of class ids).
  assert set(np.unique(out["label"])) <= set(range(WIDTH))
  np.testing.assert_array_equal(out["depth"].numpy() - 1.0, out["label"].numpy())


@pytest.mark.parametrize("seed", range(6))
def test_random_augmentation_keeps_geometry(seed):
  clip = _ramp_clip()
  config = augment.AugmentConfig(color_probability=0.0, max_scale=1.3)
  out = augment.augment_clip(clip, [seed, 7], config)
  # Whether the clip was flipped shows in its content: the ramp decreases along x.
  mirrored = bool(out["image"][0, 0, -1, 0] < out["image"][0, 0, 0, 0])
  _check_reprojection(clip, out, mirrored=mirrored)


def test_augmentation_is_deterministic_per_seed_and_varies_across_seeds():
  clip = _ramp_clip()
  clip["image"] = tf.random.uniform([T, HEIGHT, WIDTH, 3], seed=1)
  a = augment.augment_clip(clip, [1, 2])
  b = augment.augment_clip(clip, [1, 2])
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  others = [augment.augment_clip(clip, [s, 3])["image"].numpy() for s in range(4)]
  assert len({o.tobytes() for o in others}) == 4


def test_color_jitter_is_one_draw_per_clip():
  image = tf.random.uniform([1, HEIGHT, WIDTH, 3], seed=2)
  clip_image = tf.concat([image, image], axis=0)
  config = augment.AugmentConfig(color_probability=1.0)
  out = augment.jitter_color(clip_image, tf.constant([3, 4], tf.int64), config).numpy()
  np.testing.assert_allclose(out[0], out[1], atol=1e-6)
  assert np.abs(out[0] - image[0].numpy()).mean() > 1e-3
  assert out.min() >= 0.0 and out.max() <= 1.0


def test_augment_inside_tf_data_equals_the_eager_call_with_the_same_seed():
  clip = _ramp_clip()
  ds = tf.data.Dataset.from_tensors(clip).repeat(3).enumerate().map(
      lambda i, c: augment.augment_clip(c, tf.stack([i, tf.constant(0, tf.int64)])))
  for i, out in enumerate(ds):
    eager = augment.augment_clip(clip, tf.constant([i, 0], tf.int64))
    for key in eager:
      np.testing.assert_allclose(out[key].numpy(), eager[key].numpy(), rtol=1e-6, atol=1e-6, err_msg=key)


def test_config_rejects_bad_values():
  with pytest.raises(ValueError, match="flip_probability must be in"):
    augment.AugmentConfig(flip_probability=1.5)
  with pytest.raises(ValueError, match="max_scale must be >= 1"):
    augment.AugmentConfig(max_scale=0.9)

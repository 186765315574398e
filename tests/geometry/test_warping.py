"""The depth warp (identity, plane homography, translation fields, gradients) and flow warping."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from tests.geometry import reference

HEIGHT, WIDTH = 48, 64
FX, FY, CX, CY = 60.0, 58.0, 31.5, 23.5


def _intrinsics(batch=1):
  return geometry.make_intrinsics([FX] * batch, [FY] * batch, [CX] * batch, [CY] * batch)


def _textured_image(rng, batch=1, height=HEIGHT, width=WIDTH):
  """Smooth random texture (a sum of sinusoids): bilinear interpolation of it is accurate."""
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  channels = []
  for _ in range(3):
    value = np.zeros_like(x)
    for _ in range(4):
      fx, fy, phase = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4), rng.uniform(0, 2 * np.pi)
      value += np.sin(fx * x + fy * y + phase)
    channels.append(value)
  return np.broadcast_to(np.stack(channels, -1), (batch, height, width, 3)).astype(np.float32)


def test_identity_motion_is_identity_warp():
  rng = np.random.default_rng(0)
  depth = tf.constant(rng.uniform(1.0, 5.0, (2, HEIGHT, WIDTH)), tf.float32)
  warp = geometry.depth_warp(depth, tf.eye(3, batch_shape=[2]), tf.zeros([2, 3]), _intrinsics(2))
  grid = np.broadcast_to(geometry.pixel_grid(HEIGHT, WIDTH), (2, HEIGHT, WIDTH, 2))
  np.testing.assert_allclose(warp.coords, grid, atol=1e-4)
  np.testing.assert_allclose(warp.depth, depth, rtol=1e-6)
  assert np.all(warp.valid)
  image = _textured_image(rng, 2)
  np.testing.assert_allclose(geometry.resample(image, warp.coords), image, atol=1e-4)


def _plane_motion():
  rotation = geometry.matrix_from_angles([[0.03, -0.05, 0.02]])
  translation = tf.constant([[0.08, -0.05, 0.15]])
  return rotation, translation


def _plane_homography(rotation, translation, plane_depth):
  """H = K (R + t n^T / d) K^-1 for the fronto-parallel plane z = d (n = (0, 0, 1)) of frame j."""
  k = reference.intrinsics(FX, FY, CX, CY)
  normal = np.array([[0.0, 0.0, 1.0]])
  homography = k @ (rotation + translation.reshape(3, 1) @ normal / plane_depth) @ np.linalg.inv(k)
  return homography / homography[2, 2]


def test_fronto_parallel_plane_is_a_homography():
  plane_depth = 2.5
  rotation, translation = _plane_motion()
  depth = tf.fill([1, HEIGHT, WIDTH], plane_depth)
  warp = geometry.depth_warp(depth, rotation, translation, _intrinsics())
  homography = _plane_homography(rotation.numpy()[0].astype(np.float64), translation.numpy()[0], plane_depth)

  grid = geometry.pixel_grid(HEIGHT, WIDTH).numpy().astype(np.float64)
  mapped = np.concatenate([grid, np.ones((HEIGHT, WIDTH, 1))], -1) @ homography.T
  np.testing.assert_allclose(warp.coords[0], mapped[..., :2] / mapped[..., 2:], atol=2e-3)

  # The same image warp through TensorFlow's own projective-transform kernel.
  image = _textured_image(np.random.default_rng(1))
  expected = tf.raw_ops.ImageProjectiveTransformV3(
      images=image, transforms=tf.constant(homography.reshape(-1)[:8][np.newaxis], tf.float32),
      output_shape=[HEIGHT, WIDTH], fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT").numpy()
  ours = geometry.resample(image, warp.coords).numpy()
  interior = warp.valid.numpy()[0]
  assert interior.mean() > 0.6
  np.testing.assert_allclose(ours[0][interior], expected[0][interior], atol=5e-3)
  # Outside the image both fill with zeros (one pixel inside the fade band may differ by design).
  far_outside = ~geometry.inside_image(warp.coords[0] + 1.0, HEIGHT + 2, WIDTH + 2).numpy()
  np.testing.assert_array_equal(ours[0][far_outside], 0.0)


def test_validity_mask():
  depth = tf.fill([1, HEIGHT, WIDTH], 2.0)
  # Move the camera right: the scene moves left in frame i, and the right edge of frame j leaves the image.
  warp = geometry.depth_warp(depth, tf.eye(3, batch_shape=[1]), tf.constant([[-0.5, 0.0, 0.0]]), _intrinsics())
  shift = FX * 0.5 / 2.0  # 15 px
  np.testing.assert_allclose(warp.coords[0, ..., 0] - geometry.pixel_grid(HEIGHT, WIDTH)[..., 0], -shift, atol=1e-4)
  np.testing.assert_array_equal(warp.valid[0], geometry.pixel_grid(HEIGHT, WIDTH)[..., 0] >= shift)
  # Points carried behind camera i are invalid (and everything stays finite).
  behind = geometry.depth_warp(depth, tf.eye(3, batch_shape=[1]), tf.constant([[0.0, 0.0, -3.0]]), _intrinsics())
  assert not np.any(behind.valid) and np.all(np.isfinite(behind.coords))


def test_translation_field_equals_constant_translation():
  rng = np.random.default_rng(2)
  depth = tf.constant(rng.uniform(1.0, 4.0, (2, 6, 8)), tf.float32)
  k = geometry.make_intrinsics([8.0, 9.0], [8.0, 9.0], [3.5, 3.5], [2.5, 2.5])
  rotation = geometry.matrix_from_angles(rng.uniform(-0.1, 0.1, (2, 3)).astype(np.float32))
  translation = tf.constant(rng.normal(scale=0.1, size=(2, 3)), tf.float32)
  by_vector = geometry.depth_warp(depth, rotation, translation, k)
  by_field = geometry.depth_warp(depth, rotation, geometry.translation_field(translation, tf.zeros([2, 6, 8, 3])), k)
  for a, b in zip(by_vector, by_field):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_warp_round_trip_through_inverse_motion():
  """Warping j -> i with depth, then i -> j with the warped depth and the inverse motion, returns every pixel."""
  rng = np.random.default_rng(3)
  depth = tf.constant(rng.uniform(2.0, 4.0, (1, HEIGHT, WIDTH)), tf.float32)
  rotation, translation = _plane_motion()
  forward = geometry.depth_warp(depth, rotation, translation, _intrinsics())
  points_i = geometry.unproject(forward.coords, forward.depth, _intrinsics())
  back = geometry.project(geometry.transform_points(*geometry.invert_motion(rotation, translation), points_i),
                          _intrinsics())
  np.testing.assert_allclose(back[0], geometry.pixel_grid(HEIGHT, WIDTH), atol=2e-3)


def test_depth_warp_gradients_match_finite_differences():
  """Gradients of an image resampled through the depth warp, w.r.t. depth, rotation angles and translation."""
  rng = np.random.default_rng(4)
  image = tf.constant(_textured_image(rng, 1, 5, 6), tf.float64)
  k = geometry.make_intrinsics([6.0], [6.0], [2.5], [2.0])

  def warped(depth, angles, translation):
    warp = geometry.depth_warp(depth, geometry.matrix_from_angles(angles), translation, k)
    return geometry.resample(image, warp.coords)

  depth = rng.uniform(2.0, 3.0, (1, 5, 6))
  angles = np.array([[0.04, -0.05, 0.03]])
  translation = np.array([[0.12, 0.09, -0.05]])
  theoretical, numerical = tf.test.compute_gradient(
      lambda d, a, t: tf.cast(warped(tf.cast(d, tf.float32), tf.cast(a, tf.float32), tf.cast(t, tf.float32)),
                              tf.float64),
      [depth, angles, translation], delta=1e-3)
  # Bilinear sampling has kinks at integer coordinates: compare only output pixels whose coordinates are at least
  # 0.02 px from an integer (a finite-difference step moves them by far less).
  coords = geometry.depth_warp(tf.constant(depth, tf.float32), geometry.matrix_from_angles(angles.astype(np.float32)),
                               tf.constant(translation, tf.float32), k).coords.numpy()
  frac = coords - np.round(coords)
  smooth = np.repeat(np.all(np.abs(frac) > 0.02, axis=-1).reshape(-1), 3)  # one Jacobian row per output channel
  assert smooth.mean() > 0.5
  for t, n in zip(theoretical, numerical):
    assert np.abs(t[smooth]).max() > 0
    np.testing.assert_allclose(t[smooth], n[smooth], atol=1e-2 * np.abs(n).max())


def test_flow_warp_with_integer_flow_shifts_the_image():
  image = tf.random.normal([2, 6, 7, 3])
  flow = tf.broadcast_to(tf.constant([2.0, -1.0]), [2, 6, 7, 2])
  warped = geometry.warp_with_flow(image, flow)
  np.testing.assert_allclose(warped[:, 1:, :5], image[:, :5, 2:], atol=1e-6)
  np.testing.assert_array_equal(warped[:, :, 5:], 0.0)
  np.testing.assert_array_equal(warped[:, 0], 0.0)
  border = geometry.warp_with_flow(image, flow, boundary="border")
  np.testing.assert_allclose(border[:, 1:, 5], image[:, :5, 6], atol=1e-6)


def test_flow_and_coords_are_inverse():
  flow = tf.random.normal([2, 4, 5, 2])
  np.testing.assert_allclose(geometry.flow_from_coords(geometry.coords_from_flow(flow)), flow, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_depth_warp_traces_with_unknown_shapes(jit_compile):
  spec = [tf.TensorSpec([None, None, None]), tf.TensorSpec([None, 3, 3]), tf.TensorSpec([None, 3]),
          tf.TensorSpec([None, 3, 3])]
  fn = tf.function(lambda *a: geometry.depth_warp(*a).coords, jit_compile=jit_compile)
  if not jit_compile:
    fn = tf.function(lambda *a: geometry.depth_warp(*a).coords, input_signature=spec)
  depth = tf.fill([1, HEIGHT, WIDTH], 2.0)
  rotation, translation = _plane_motion()
  np.testing.assert_allclose(fn(depth, rotation, translation, _intrinsics()),
                             geometry.depth_warp(depth, rotation, translation, _intrinsics()).coords, atol=1e-4)

"""The bilinear resampler against a float64 NumPy reference, with gradient checks."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from tests.geometry import reference

POLICIES = ("zeros", "border")


def _random_coords(rng, batch, out_h, out_w, height, width):
  """Coordinates covering the image, a band outside it, and exact integers (pixel centres and the last pixel)."""
  coords = np.stack([rng.uniform(-2.5, width + 1.5, (batch, out_h, out_w)),
                     rng.uniform(-2.5, height + 1.5, (batch, out_h, out_w))], axis=-1)
  coords[:, 0, :, 0] = np.arange(out_w) % width          # integer x
  coords[:, 1, :, 1] = np.arange(out_w) % height         # integer y
  coords[:, 2, :] = [width - 1, height - 1]              # exactly the last pixel
  coords[:, 3, :] = np.round(coords[:, 3, :])            # integers, some outside
  return coords.astype(np.float32)


@pytest.mark.parametrize("boundary", POLICIES)
def test_matches_numpy_reference(boundary):
  rng = np.random.default_rng(1)
  image = rng.normal(size=(2, 7, 9, 3)).astype(np.float32)
  coords = _random_coords(rng, 2, 6, 11, 7, 9)
  expected = reference.resample(image, coords, boundary)
  actual = geometry.resample(image, coords, boundary=boundary).numpy()
  np.testing.assert_allclose(actual, expected, atol=2e-6)


@pytest.mark.parametrize("boundary", POLICIES)
def test_same_result_in_graph_and_xla(boundary):
  rng = np.random.default_rng(2)
  image = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
  coords = _random_coords(rng, 2, 4, 8, 5, 6)
  eager = geometry.resample(image, coords, boundary=boundary)
  # Unknown spatial sizes at trace time must work too.
  spec = (tf.TensorSpec([None, None, None, 4]), tf.TensorSpec([None, None, None, 2]))
  graph = tf.function(lambda i, c: geometry.resample(i, c, boundary=boundary), input_signature=spec)
  xla = tf.function(lambda i, c: geometry.resample(i, c, boundary=boundary), jit_compile=True)
  np.testing.assert_allclose(graph(image, coords), eager, atol=1e-6)
  np.testing.assert_allclose(xla(image, coords), eager, atol=1e-5)


def test_identity_coordinates_return_the_image():
  image = tf.random.normal([2, 6, 7, 3])
  grid = tf.broadcast_to(geometry.pixel_grid(6, 7), [2, 6, 7, 2])
  for boundary in POLICIES:
    np.testing.assert_array_equal(geometry.resample(image, grid, boundary=boundary), image)


def test_far_outside():
  image = tf.random.normal([1, 4, 5, 2])
  coords = tf.constant([[[[-1e9, 2.0], [3.0, 1e9], [-1.0, -1.0], [1e30, -1e30]]]])
  zeros = geometry.resample(image, coords, boundary="zeros").numpy()
  np.testing.assert_array_equal(zeros, 0.0)
  border = geometry.resample(image, coords, boundary="border").numpy()
  np.testing.assert_array_equal(border[0, 0], image.numpy()[0, [2, 3, 0, 0], [0, 3, 0, 4]])


@pytest.mark.parametrize("boundary", POLICIES)
def test_gradients_match_finite_differences(boundary):
  rng = np.random.default_rng(3)
  image = rng.normal(size=(1, 4, 5, 2)).astype(np.float64)
  coords = rng.uniform(-1.2, 5.2, size=(1, 3, 3, 2))
  # Finite differences need a neighbourhood without kinks: keep coordinates 0.05 px away from integers.
  frac = coords - np.floor(coords)
  coords = np.floor(coords) + np.clip(frac, 0.05, 0.95)
  theoretical, numerical = tf.test.compute_gradient(
      lambda i, c: geometry.resample(i, c, boundary=boundary), [image, coords], delta=1e-4)
  for t, n in zip(theoretical, numerical):
    np.testing.assert_allclose(t, n, atol=1e-6)


@pytest.mark.parametrize("boundary", POLICIES)
def test_gradient_at_integer_coordinates(boundary):
  """No NaN, and the derivative is the one-sided difference I(x + 1) - I(x): never a spurious zero."""
  image = tf.constant(np.arange(30, dtype=np.float32).reshape(1, 5, 6, 1) ** 2)
  coords = tf.constant([[[[2.0, 1.0], [0.0, 3.0], [4.0, 0.0]]]])
  with tf.GradientTape() as tape:
    tape.watch(coords)
    out = geometry.resample(image, coords, boundary=boundary)
  grad = tape.gradient(out, coords).numpy()[0, 0]
  img = image.numpy()[0, ..., 0]
  assert np.all(np.isfinite(grad))
  for (x, y), (gx, gy) in zip([(2, 1), (0, 3), (4, 0)], grad):
    assert gx == pytest.approx(img[y, x + 1] - img[y, x])
    assert gy == pytest.approx(img[y + 1, x] - img[y, x])


def test_gradient_at_last_pixel():
  """At x = W - 1 (the clamped edge) the border policy takes the left cell; zeros fades to the zero padding."""
  image = tf.constant(np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1) ** 2)
  coords = tf.constant([[[[3.0, 1.0]]]])
  grads = {}
  for boundary in POLICIES:
    with tf.GradientTape() as tape:
      tape.watch(coords)
      out = geometry.resample(image, coords, boundary=boundary)
    grads[boundary] = tape.gradient(out, coords).numpy()[0, 0, 0]
  img = image.numpy()[0, ..., 0]
  assert grads["border"][0] == pytest.approx(img[1, 3] - img[1, 2])
  assert grads["zeros"][0] == pytest.approx(-img[1, 3])


def test_image_gradient_is_the_transposed_interpolation():
  """d(sum out)/d(image) at pixel p is the total bilinear weight that p receives."""
  coords = tf.constant([[[[0.25, 0.5], [1.0, 1.0]]]])
  image = tf.zeros([1, 2, 3, 1])
  with tf.GradientTape() as tape:
    tape.watch(image)
    out = tf.reduce_sum(geometry.resample(image, coords))
  grad = tape.gradient(out, image).numpy()[0, ..., 0]
  expected = np.array([[0.75 * 0.5, 0.25 * 0.5, 0.0], [0.75 * 0.5, 0.25 * 0.5 + 1.0, 0.0]])
  np.testing.assert_allclose(grad, expected, atol=1e-7)


def test_rejects_bad_arguments():
  with pytest.raises(ValueError, match="boundary must be one of"):
    geometry.resample(tf.zeros([1, 2, 2, 1]), tf.zeros([1, 1, 1, 2]), boundary="reflect")
  with pytest.raises(ValueError, match=r"image must be \[B, H, W, C\].*\(2, 2, 1\)"):
    geometry.resample(tf.zeros([2, 2, 1]), tf.zeros([1, 1, 1, 2]))
  with pytest.raises(ValueError, match="coords must end in 2"):
    geometry.resample(tf.zeros([1, 2, 2, 1]), tf.zeros([1, 1, 1, 3]))

"""Dense matching of two frames at full resolution: normalised cross-correlation of image patches, no learning.

For every pixel x of frame a and every displacement d within `radius`, the normalised cross-correlation of the patch
at x in frame a with the patch at x + d in frame b (all channels together), computed with box filters, no patch
tensors: both frames are first made zero-mean locally (each pixel minus the mean of its own patch-sized window, a
close stand-in for subtracting the patch's mean), then one product per displacement and one box filter over all of
them give the covariances. A softmax over the displacements (scores
times a temperature) and its expectation within the peak's 3 x 3 neighbourhood (a local soft-argmax) give a
sub-pixel flow and a confidence (the probability mass of that neighbourhood).

  flow, confidence = patch_match.ncc_flow(frame_a, frame_b, radius=8, patch_size=7)

What it is for: `MotionNet(pose_solver="least_squares")` solves for the camera motion that explains this flow; a
fixed matcher gives that solver sub-pixel measurements from the first step, where a learned one would first have to
learn to match (README "What the stages reach on synthetic data"). It is not differentiable (stop_gradient).
"""

import tensorflow as tf

# Displacements whose patch leaves frame b score this (below any correlation) and so get no probability.
_OUTSIDE_SCORE = -2.0


def displacements(radius):
  """[(2 r + 1)^2, 2] float32 (dx, dy) displacements, dy outer and dx inner (the `Correlation` layer's order)."""
  offsets = range(-radius, radius + 1)
  return tf.constant([[dx, dy] for dy in offsets for dx in offsets], tf.float32)


def peak_flow(probabilities, table):
  """The expected displacement within the 3 x 3 neighbourhood of the most likely one (a local soft-argmax).

  The expectation over all displacements is pulled towards the centre of the search window whenever the
  distribution is broad; over the peak's neighbourhood only it is not.

  Args:
    probabilities: [B, H, W, K] a distribution over the K displacements of `table`.
    table: [K, 2] (dx, dy) displacements on a unit grid.

  Returns:
    (flow [B, H, W, 2], mass [B, H, W]: the probability within that neighbourhood, a confidence in (0, 1]).
  """
  probabilities = tf.cast(probabilities, tf.float32)
  best = tf.gather(table, tf.argmax(probabilities, axis=-1))
  distance = tf.reduce_max(tf.abs(table - best[..., tf.newaxis, :]), axis=-1)
  local = probabilities * tf.cast(distance <= 1.0, tf.float32)
  mass = tf.reduce_sum(local, axis=-1)
  return tf.einsum("bhwk,kc->bhwc", local, table) / mass[..., tf.newaxis], mass


def _box(x, size):
  """Separable box mean over size x size windows (SAME: the window shrinks at the border)."""
  x = tf.nn.avg_pool2d(x, [size, 1], 1, "SAME")
  return tf.nn.avg_pool2d(x, [1, size], 1, "SAME")


def _shifted(x, radius):
  """[B, H, W, K, C]: x at x + d for every displacement d of `displacements(radius)`, zeros outside (one op)."""
  size = 2 * radius + 1
  padded = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]])
  patches = tf.image.extract_patches(padded, [1, size, size, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
  shape = tf.shape(x)
  return tf.reshape(patches, [shape[0], shape[1], shape[2], size * size, x.shape[-1]])


def ncc_scores(image_a, image_b, radius, patch_size=7, epsilon=1e-4):
  """[B, H, W, (2 r + 1)^2] normalised cross-correlation of a's patch at x with b's patch at x + d.

  Args:
    image_a, image_b: [B, H, W, C] float images (the same size).
    radius: largest |dx| and |dy|, in pixels.
    patch_size: odd side of the square patches.
    epsilon: added to each patch's energy (flat patches score ~0 instead of dividing by 0).

  Returns:
    Scores in [-1, 1], displacements in `displacements(radius)` order; those that leave frame b score -2.
  """
  image_a = tf.stop_gradient(tf.convert_to_tensor(image_a, tf.float32))
  image_b = tf.stop_gradient(tf.convert_to_tensor(image_b, tf.float32))
  centred_a = image_a - _box(image_a, patch_size)
  centred_b = image_b - _box(image_b, patch_size)
  # sum_c a(x) b(x + d) for every d, then the box filter sums it over the patch.
  covariance = _box(tf.einsum("bhwc,bhwkc->bhwk", centred_a, _shifted(centred_b, radius)), patch_size)
  energy_b = _box(_shifted(tf.reduce_sum(centred_b ** 2, axis=-1, keepdims=True), radius)[..., 0], patch_size)
  energy_a = _box(tf.reduce_sum(centred_a ** 2, axis=-1, keepdims=True), patch_size)
  inside = _shifted(tf.ones_like(centred_b[..., :1]), radius)[..., 0] > 0.5
  scores = covariance / tf.sqrt((energy_a + epsilon) * (energy_b + epsilon))
  return tf.where(inside, scores, _OUTSIDE_SCORE)


def ncc_flow(image_a, image_b, radius=8, patch_size=7, temperature=100.0):
  """(flow [B, H, W, 2] from a's pixels to their match in b, confidence [B, H, W]); see the module docstring."""
  probabilities = tf.nn.softmax(temperature * ncc_scores(image_a, image_b, radius, patch_size), axis=-1)
  return peak_flow(probabilities, displacements(radius))

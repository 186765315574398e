"""Dense matching of two frames at full resolution: normalised cross-correlation of image patches, no learning.

For every pixel x of frame a and every displacement d within `radius`, the normalised cross-correlation of the patch
at x in frame a with the patch at x + d in frame b (all channels together), computed with box filters, no patch
tensors: both frames are first made zero-mean locally (each pixel minus the mean of its own patch-sized window, a
close stand-in for subtracting the patch's mean), then one product per displacement and one box filter over all of
them give the covariances. The best displacement, refined to sub-pixel by a parabola through its neighbours' scores,
is the flow; the probability mass of its 3 x 3 neighbourhood under a softmax of the scores (times a temperature) is
the confidence.

  flow, confidence = patch_match.ncc_flow(frame_a, frame_b, radius=8, patch_size=7)  # every displacement
  flow, confidence = patch_match.coarse_to_fine_flow(frame_a, frame_b, radius=8)  # the same range, ~5x cheaper

What it is for: `MotionNet(pose_solver="least_squares")` solves for the camera motion that explains this flow; a
fixed matcher gives that solver sub-pixel measurements from the first step, where a learned one would first have to
learn to match (README "What the stages reach on synthetic data"). It is not differentiable (stop_gradient).
"""

import tensorflow as tf

from depth_motion.geometry import warping

# Displacements whose patch leaves frame b score this (below any correlation) and so get no probability.
_OUTSIDE_SCORE = -2.0
# coarse_to_fine_flow: the largest radius searched exhaustively, and the refinement's radius at each finer level.
COARSE_RADIUS = 4
REFINE_RADIUS = 2


def displacements(radius):
  """[(2 r + 1)^2, 2] float32 (dx, dy) displacements, dy outer and dx inner (the `Correlation` layer's order)."""
  offsets = range(-radius, radius + 1)
  return tf.constant([[dx, dy] for dy in offsets for dx in offsets], tf.float32)


def _parabola_vertex(minus, centre, plus, valid):
  """Sub-pixel offset in [-0.5, 0.5] of the maximum of the parabola through (-1, minus), (0, centre), (1, plus);
  0 where not `valid` or not curved downwards."""
  curvature = minus - 2.0 * centre + plus
  curved = valid & (curvature < -1e-6)
  offset = 0.5 * (minus - plus) / tf.where(curved, curvature, -1.0)
  return tf.where(curved, tf.clip_by_value(offset, -0.5, 0.5), 0.0)


def peak_flow(scores, radius, temperature):
  """The best displacement, to sub-pixel precision, and a confidence.

  The sub-pixel offset is the vertex of a parabola through the best score and its two neighbours, along x and along
  y (the standard refinement of a correlation peak); the confidence is the probability mass, under a softmax of
  the scores times `temperature`, within the best displacement's 3 x 3 neighbourhood.

  Args:
    scores: [B, H, W, (2 r + 1)^2] match scores in `displacements(radius)` order.
    radius: the search radius r.
    temperature: multiplies the scores in the softmax.

  Returns:
    (flow [B, H, W, 2], confidence [B, H, W] in (0, 1]).
  """
  scores = tf.cast(scores, tf.float32)
  size = 2 * radius + 1
  table = displacements(radius)
  best = tf.argmax(scores, axis=-1, output_type=tf.int32)
  row, column = best // size, best % size

  def at(index):
    return tf.gather(scores, index[..., tf.newaxis], batch_dims=3)[..., 0]

  centre = at(best)
  inside_x = (column > 0) & (column < size - 1)
  inside_y = (row > 0) & (row < size - 1)
  offset_x = _parabola_vertex(at(tf.where(inside_x, best - 1, best)), centre,
                              at(tf.where(inside_x, best + 1, best)), inside_x)
  offset_y = _parabola_vertex(at(tf.where(inside_y, best - size, best)), centre,
                              at(tf.where(inside_y, best + size, best)), inside_y)
  best_displacement = tf.gather(table, best)
  flow = best_displacement + tf.stack([offset_x, offset_y], axis=-1)
  probabilities = tf.nn.softmax(temperature * scores, axis=-1)
  # The mass within one row and one column of the best: the 3 x 3 neighbourhood as a row mask times a column mask.
  offsets = tf.range(size)
  near_row = tf.cast(tf.abs(offsets - row[..., tf.newaxis]) <= 1, tf.float32)
  near_column = tf.cast(tf.abs(offsets - column[..., tf.newaxis]) <= 1, tf.float32)
  grid = tf.reshape(probabilities, tf.concat([tf.shape(probabilities)[:3], [size, size]], axis=0))
  confidence = tf.einsum("bhwrc,bhwr,bhwc->bhw", grid, near_row, near_column)
  return flow, confidence


def _box(x, size):
  """Separable box mean over size x size windows (SAME: the window shrinks at the border)."""
  x = tf.nn.avg_pool2d(x, [size, 1], 1, "SAME")
  return tf.nn.avg_pool2d(x, [1, size], 1, "SAME")


def _shifted(x, radius):
  """[B, H, W, K, C]: x at x + d for every displacement d of `displacements(radius)`, zeros outside.

  Shifted along x by 2 r + 1 slices of the padded image, then the result along y by as many (dy outer, dx inner):
  3x faster on CPU than `tf.image.extract_patches` with the same result."""
  size = 2 * radius + 1
  shape = tf.shape(x)
  height, width = shape[1], shape[2]
  padded = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]])
  along_x = tf.stack([padded[:, :, dx:dx + width] for dx in range(size)], axis=3)
  both = tf.stack([along_x[:, dy:dy + height] for dy in range(size)], axis=3)
  return tf.reshape(both, [shape[0], height, width, size * size, x.shape[-1]])


def _inside(height, width, radius):
  """[H, W, K] bool: whether x + d lies in an H x W frame, for every displacement d of `displacements(radius)`."""
  offsets = tf.range(-radius, radius + 1)

  def within(length):  # [length, 2 r + 1]: position + offset in [0, length)
    shifted = tf.range(length)[:, tf.newaxis] + offsets
    return (shifted >= 0) & (shifted < length)

  rows, columns = within(height), within(width)
  size = 2 * radius + 1
  both = rows[:, tf.newaxis, :, tf.newaxis] & columns[tf.newaxis, :, tf.newaxis, :]  # [H, W, dy, dx]
  return tf.reshape(both, [height, width, size * size])


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
  image_a = tf.stop_gradient(tf.cast(image_a, tf.float32))
  image_b = tf.stop_gradient(tf.cast(image_b, tf.float32))
  centred_a = image_a - _box(image_a, patch_size)
  centred_b = image_b - _box(image_b, patch_size)
  # sum_c a(x) b(x + d) for every d, then the box filter sums it over the patch.
  covariance = _box(tf.einsum("bhwc,bhwkc->bhwk", centred_a, _shifted(centred_b, radius)), patch_size)
  energy_b = _box(_shifted(tf.reduce_sum(centred_b ** 2, axis=-1, keepdims=True), radius)[..., 0], patch_size)
  energy_a = _box(tf.reduce_sum(centred_a ** 2, axis=-1, keepdims=True), patch_size)
  inside = _inside(tf.shape(image_b)[1], tf.shape(image_b)[2], radius)
  scores = covariance / tf.sqrt((energy_a + epsilon) * (energy_b + epsilon))
  return tf.where(inside, scores, _OUTSIDE_SCORE)


def ncc_flow(image_a, image_b, radius=8, patch_size=7, temperature=100.0):
  """(flow [B, H, W, 2] from a's pixels to their match in b, confidence [B, H, W]); see the module docstring.

  Searches every displacement within `radius` at full resolution: (2 r + 1)^2 of them. `coarse_to_fine_flow` covers
  the same range for a fraction of the cost."""
  return peak_flow(ncc_scores(image_a, image_b, radius, patch_size), radius, temperature)


def _half(image):
  """2 x 2 mean (the last row / column alone where the size is odd)."""
  return tf.nn.avg_pool2d(image, 2, 2, "SAME")


def coarse_to_fine_flow(image_a, image_b, radius=8, patch_size=7, temperature=100.0):
  """`ncc_flow` for motions up to about `radius` pixels, searched coarse to fine.

  Above COARSE_RADIUS the match is first found at half resolution within half the radius (recursively), then refined
  within REFINE_RADIUS at full resolution against frame b warped by the coarse flow (smoothed over a patch and
  upsampled). At radius 8 that is 81 displacements on a quarter of the pixels plus 25 on all of them, against 289 on
  all for `ncc_flow`. The confidence is the product of the refinement's and the (upsampled) coarse level's.

  Returns:
    (flow [B, H, W, 2] from a's pixels to their match in b, confidence [B, H, W]).
  """
  if radius <= COARSE_RADIUS:
    return ncc_flow(image_a, image_b, radius, patch_size, temperature)
  image_a = tf.stop_gradient(tf.cast(image_a, tf.float32))
  image_b = tf.stop_gradient(tf.cast(image_b, tf.float32))
  coarse_flow, coarse_confidence = coarse_to_fine_flow(_half(image_a), _half(image_b), -(-radius // 2), patch_size,
                                                       temperature)
  size = tf.shape(image_a)[1:3]
  scale = tf.cast(size, tf.float32) / tf.cast(tf.shape(coarse_flow)[1:3], tf.float32)
  # Smoothed over a patch (weighted by confidence): the refinement measures one shift per patch, so the warp of frame
  # b must be about constant across one; unsmoothed, the coarse level's sub-pixel noise leaves ~0.3 px errors.
  weights = coarse_confidence[..., tf.newaxis] + 1e-6
  coarse_flow = _box(coarse_flow * weights, patch_size) / _box(weights, patch_size)
  initial = tf.image.resize(coarse_flow, size) * tf.stack([scale[1], scale[0]])
  coarse_confidence = tf.image.resize(coarse_confidence[..., tf.newaxis], size)[..., 0]
  refinement, confidence = ncc_flow(image_a, warping.warp_with_flow(image_b, initial), REFINE_RADIUS, patch_size,
                                    temperature)
  return initial + refinement, confidence * coarse_confidence

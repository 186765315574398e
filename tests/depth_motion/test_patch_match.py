"""Full-resolution patch matching: integer and sub-pixel shifts, displacements that leave the view, confidence."""

import numpy as np
import tensorflow as tf

from depth_motion import patch_match


def _texture(height=44, width=60, seed=1):
  return tf.random.stateless_uniform([1, height, width, 3], seed=[seed, 3])


def test_displacement_order_is_dy_outer_dx_inner():
  table = patch_match.displacements(1).numpy()
  assert table.shape == (9, 2)
  np.testing.assert_array_equal(table[:3], [[-1, -1], [0, -1], [1, -1]])
  np.testing.assert_array_equal(table[4], [0, 0])


def test_integer_shift_is_found_exactly_with_high_confidence():
  texture = _texture()
  frame_a, frame_b = texture[:, 4:36, 2:50], texture[:, 1:33, 5:53]  # a's pixel x is b's pixel x + (-3, 3)
  flow, confidence = patch_match.ncc_flow(frame_a, frame_b, radius=4, patch_size=5)
  assert flow.shape == (1, 32, 48, 2) and confidence.shape == (1, 32, 48)
  # Away from the borders (where the match leaves b or the patch is cut), the flow is the shift (the parabola through
  # an integer peak's neighbours is off-centre by up to ~0.06 px where the texture is not symmetric about it).
  np.testing.assert_allclose(flow[0, 6:-6, 6:-6], np.broadcast_to([-3.0, 3.0], (20, 36, 2)), atol=0.1)
  np.testing.assert_allclose(np.median(flow[0, 6:-6, 6:-6].numpy().reshape(-1, 2), axis=0), [-3.0, 3.0], atol=0.01)
  assert float(tf.reduce_min(confidence[0, 6:-6, 6:-6])) > 0.9


def test_sub_pixel_shift_is_interpolated():
  smooth = tf.image.resize(_texture(12, 16, seed=2), [48, 64], method="bicubic")
  frame_b = smooth[:, 8:40, 8:56]
  # a(x) = b(x + 0.5): frame a is b resampled half a pixel to the right.
  frame_a = 0.5 * (smooth[:, 8:40, 8:56] + smooth[:, 8:40, 9:57])
  flow, _ = patch_match.ncc_flow(frame_a, frame_b, radius=2, patch_size=7)
  np.testing.assert_allclose(np.median(flow[0, 6:-6, 6:-6, 0]), 0.5, atol=0.15)
  np.testing.assert_allclose(np.median(flow[0, 6:-6, 6:-6, 1]), 0.0, atol=0.05)


def test_scores_are_correlations_and_leaving_the_view_is_excluded():
  frame = _texture(20, 24)
  scores = patch_match.ncc_scores(frame, frame, radius=2, patch_size=5)
  centre = 12  # displacement (0, 0)
  np.testing.assert_allclose(scores[0, :, :, centre], 1.0, atol=1e-3)
  inside = scores.numpy() > -1.5
  assert np.all(scores.numpy()[inside] <= 1.0 + 1e-4)
  assert not inside[0, 0, 0, 0] and not inside[0, -1, -1, -1]  # (-2, -2) from the top left leaves the image


def test_coarse_to_fine_finds_a_shift_beyond_its_finest_search_and_matches_the_exhaustive_search():
  texture = tf.image.resize(_texture(24, 32, seed=4), [64, 96], method="bicubic")  # smooth enough to downsample
  frame_a, frame_b = texture[:, 10:54, 1:81], texture[:, 3:47, 7:87]  # a's pixel x is b's pixel x + (-6, 7)
  flow, confidence = patch_match.coarse_to_fine_flow(frame_a, frame_b, radius=8, patch_size=7)
  exhaustive, _ = patch_match.ncc_flow(frame_a, frame_b, radius=8, patch_size=7)
  assert flow.shape == (1, 44, 80, 2) and confidence.shape == (1, 44, 80)
  # Pixels whose match is in b with a margin of a patch and of the coarse level's smoothing (a's rows y >= 37 and
  # columns x < 6 match outside b).
  inner = (slice(None), slice(6, 26), slice(14, -6))
  # The coarse level finds (-3, 3.5) at half resolution; the refinement against frame b warped by the upsampled
  # flow brings it to the shift within the sub-pixel refinement's accuracy.
  np.testing.assert_allclose(np.median(flow[inner].numpy().reshape(-1, 2), axis=0), [-6.0, 7.0], atol=0.05)
  assert np.mean(np.abs(flow[inner] - np.array([-6.0, 7.0])) < 0.25) > 0.95
  np.testing.assert_allclose(np.median(exhaustive[inner].numpy().reshape(-1, 2), axis=0), [-6.0, 7.0], atol=0.05)
  assert float(tf.reduce_mean(confidence[inner])) > 0.5


def test_coarse_to_fine_within_the_coarse_radius_is_the_exhaustive_search():
  frame_a, frame_b = _texture(20, 24, seed=5), _texture(20, 24, seed=6)
  direct = patch_match.ncc_flow(frame_a, frame_b, radius=patch_match.COARSE_RADIUS)
  pyramid = patch_match.coarse_to_fine_flow(frame_a, frame_b, radius=patch_match.COARSE_RADIUS)
  for a, b in zip(direct, pyramid):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_shifted_images_and_inside_mask_equal_a_direct_per_displacement_shift():
  """x at x + d for every d (zeros outside) and the in-frame mask, against numpy indexing one displacement at a time."""
  x = np.random.default_rng(0).uniform(size=[2, 5, 7, 3]).astype(np.float32)
  radius = 2
  shifted = patch_match._shifted(tf.constant(x), radius).numpy()
  inside = patch_match._inside(5, 7, radius).numpy()
  for k, (dx, dy) in enumerate(patch_match.displacements(radius).numpy().astype(int)):
    expected = np.zeros_like(x)
    expected_inside = np.zeros([5, 7], bool)
    for row in range(5):
      for column in range(7):
        if 0 <= row + dy < 5 and 0 <= column + dx < 7:
          expected[:, row, column] = x[:, row + dy, column + dx]
          expected_inside[row, column] = True
    np.testing.assert_array_equal(shifted[:, :, :, k], expected)
    np.testing.assert_array_equal(inside[:, :, k], expected_inside)


def test_peak_confidence_is_the_softmax_mass_within_one_displacement_of_the_best():
  radius, temperature = 3, 5.0
  scores = np.random.default_rng(2).uniform(-1, 1, size=[2, 3, 4, (2 * radius + 1)**2]).astype(np.float32)
  _, confidence = patch_match.peak_flow(tf.constant(scores), radius, temperature)
  table = patch_match.displacements(radius).numpy()
  probabilities = np.exp(temperature * scores)
  probabilities /= probabilities.sum(axis=-1, keepdims=True)
  best = table[scores.argmax(axis=-1)]  # [2, 3, 4, 2]
  near = np.abs(table[np.newaxis, np.newaxis, np.newaxis] - best[..., np.newaxis, :]).max(axis=-1) <= 1
  np.testing.assert_allclose(confidence, (probabilities * near).sum(axis=-1), rtol=1e-5)

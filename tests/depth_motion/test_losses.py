"""The unsupervised depth/motion losses: known answers, NaN safety, gradient flow, the weights."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from depth_motion import losses
from depth_motion import photometric

BATCH, HEIGHT, WIDTH = 2, 32, 64
FX, FY, CX, CY = 40.0, 40.0, 31.5, 15.5
PLANE_DEPTH = 3.0


def _intrinsics(batch=BATCH):
  return geometry.make_intrinsics([FX] * batch, [FY] * batch, [CX] * batch, [CY] * batch)


def _textured_image(batch=BATCH, seed=0):
  """A smooth random texture in [0, 1] (a sum of sinusoids), different per sample."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
  images = np.zeros((batch, HEIGHT, WIDTH, 3))
  for b in range(batch):
    for c in range(3):
      for _ in range(4):
        fx, fy, phase = rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi)
        images[b, :, :, c] += np.sin(fx * x + fy * y + phase)
  return tf.constant(0.5 + images / 8.0, tf.float32)


def _identity(batch=BATCH):
  return tf.zeros([batch, 3]), tf.zeros([batch, 3])


def _plane(batch=BATCH, depth=PLANE_DEPTH):
  return tf.fill([batch, HEIGHT, WIDTH], depth)


def _two_views(translation):
  """Frame j: a textured fronto-parallel plane; frame i: the same plane seen after the camera moved so that
  points of camera j land in camera i as p + t (no rotation). Frame i is rendered by warping frame i's own
  (constant) depth back into frame j with the inverse motion and resampling frame j there."""
  image_j = _textured_image()
  translation = tf.constant([translation] * BATCH, tf.float32)
  rotation_inverse, translation_inverse = geometry.invert_motion(tf.eye(3, batch_shape=[BATCH]), translation)
  depth_i = _plane(depth=PLANE_DEPTH + float(translation[0, 2]))
  warp = geometry.depth_warp(depth_i, rotation_inverse, translation_inverse, _intrinsics())
  image_i = geometry.resample(image_j, warp.coords, boundary="border")
  return image_j, image_i, depth_i, translation


def test_identical_frames_and_identity_motion_give_zero_losses():
  image = _textured_image()
  rotation, translation = _identity()
  values, masks = losses.directed_pair_losses(image, _plane(), rotation, translation, _intrinsics(), image, _plane(),
                                              inverse_rotation=rotation, inverse_translation=translation)
  assert sorted(values) == sorted(losses.LOSS_TERMS)
  for name in ("rgb", "ssim", "depth_consistency", "rotation_cycle", "translation_cycle", "depth_smoothness",
               "motion_smoothness", "motion_drift"):
    assert float(values[name]) == pytest.approx(0.0, abs=1e-5), name
  # The identity warp keeps every pixel; the strict depth test then keeps only pixels whose resampled depth is
  # not rounded down below their own, so compare the valid mask.
  np.testing.assert_array_equal(masks["valid"], 1.0)
  np.testing.assert_allclose(masks["reconstruction"], image, atol=1e-4)


def test_constant_image_gives_zero_photometric_and_unweighted_smoothness():
  image = tf.fill([BATCH, HEIGHT, WIDTH, 3], 0.4)
  rotation = tf.constant([[0.01, -0.02, 0.005]] * BATCH)
  translation = tf.constant([[0.1, 0.05, -0.2]] * BATCH)  # towards the plane: not occluded by it
  depth = _plane()
  values, masks = losses.directed_pair_losses(image, depth, rotation, translation, _intrinsics(), image, depth)
  assert float(tf.reduce_mean(masks["visible"])) > 0.5
  assert float(values["rgb"]) == pytest.approx(0.0, abs=1e-6)
  assert float(values["ssim"]) == pytest.approx(0.0, abs=1e-6)
  assert float(values["depth_smoothness"]) == pytest.approx(0.0, abs=1e-6)  # constant depth
  # A constant image puts weight 1 on every depth edge: the smoothness is the plain total variation of the
  # normalized disparity. A depth step of 2 -> 4 (disparity 1/2 -> 1/4, mean 3/8) in the middle of each row:
  step = tf.concat([tf.fill([1, HEIGHT, WIDTH // 2], 2.0), tf.fill([1, HEIGHT, WIDTH // 2], 4.0)], axis=2)
  expected = (0.25 / 0.375) / (WIDTH - 1)
  assert float(losses.depth_smoothness(step, image[:1])) == pytest.approx(expected, rel=1e-5)
  # An image edge at the same place lowers it (edge-aware).
  edge = tf.concat([tf.zeros([1, HEIGHT, WIDTH // 2, 3]), tf.ones([1, HEIGHT, WIDTH // 2, 3])], axis=2)
  assert float(losses.depth_smoothness(step, edge)) == pytest.approx(expected * np.exp(-1.0), rel=1e-5)
  # A constant translation field has no motion smoothness or drift cost.
  field = tf.ones([BATCH, HEIGHT, WIDTH, 3]) * [0.1, 0.2, 0.3]
  assert float(losses.motion_field_smoothness(field)) == pytest.approx(0.0, abs=1e-6)
  assert float(losses.motion_drift(tf.zeros([BATCH, HEIGHT, WIDTH, 3]))) == 0.0


def test_true_motion_beats_perturbed_motions():
  # t_x = 0.3 at depth 3 with fx = 40 is a shift of exactly 4 pixels.
  image_j, image_i, depth_i, translation = _two_views([0.3, 0.0, 0.0])
  rotation = tf.zeros([BATCH, 3])
  depth_j = _plane()

  def photometric_loss(rotation, translation):
    values, _ = losses.directed_pair_losses(image_j, depth_j, rotation, translation, _intrinsics(), image_i,
                                            depth_i)
    return float(values["rgb"] + values["ssim"]), values

  true_loss, true_values = photometric_loss(rotation, translation)
  assert float(true_values["rgb"]) < 1e-4
  assert float(true_values["depth_consistency"]) < 1e-4
  perturbations = [([0, 0, 0], [0.05, 0, 0]), ([0, 0, 0], [-0.05, 0, 0]), ([0, 0, 0], [0, 0.05, 0]),
                   ([0, 0, 0], [0, 0, -0.2]), ([0.01, 0, 0], [0, 0, 0]), ([0, 0.01, 0], [0, 0, 0]),
                   ([0, 0, 0.02], [0, 0, 0])]
  for delta_rotation, delta_translation in perturbations:
    perturbed_loss, _ = photometric_loss(rotation + [delta_rotation], translation + [delta_translation])
    assert perturbed_loss > true_loss + 1e-3, (delta_rotation, delta_translation, perturbed_loss, true_loss)


def test_rotation_cycle():
  angles = tf.constant([[0.1, -0.2, 0.05], [-0.03, 0.02, 0.3]])
  rotation = geometry.matrix_from_angles(angles)
  inverse, _ = geometry.invert_motion(rotation, tf.zeros([2, 3]))
  assert float(losses.rotation_cycle_consistency(angles, inverse)) == pytest.approx(0.0, abs=1e-6)
  assert float(losses.rotation_cycle_consistency(rotation, geometry.angles_from_matrix(inverse))) < 1e-5
  # A rotation and itself: R^2 - I is about twice R - I, so the ratio is about 4 / 2.
  assert float(losses.rotation_cycle_consistency(angles, angles)) == pytest.approx(2.0, rel=0.05)
  # Both identities: 0, not 0 / 0.
  assert float(losses.rotation_cycle_consistency(tf.zeros([2, 3]), tf.zeros([2, 3]))) == 0.0


def test_translation_cycle():
  rotation = geometry.matrix_from_angles(tf.constant([[0.1, -0.2, 0.05]] * BATCH))
  translation = tf.constant([[0.3, -0.1, 0.2]] * BATCH)
  inverse_rotation, inverse_translation = geometry.invert_motion(rotation, translation)
  coords = tf.broadcast_to(geometry.pixel_grid(HEIGHT, WIDTH), [BATCH, HEIGHT, WIDTH, 2])
  mask = tf.ones([BATCH, HEIGHT, WIDTH])
  cycle = losses.translation_cycle_consistency(coords, mask, rotation, translation, inverse_rotation,
                                               inverse_translation)
  assert float(cycle) == pytest.approx(0.0, abs=1e-6)
  # The inverse as a field on frame i's grid (resampled at the coordinates) gives the same.
  inverse_field = tf.broadcast_to(inverse_translation[:, None, None, :], [BATCH, HEIGHT, WIDTH, 3])
  cycle = losses.translation_cycle_consistency(coords + 0.3, mask, rotation, translation, inverse_rotation,
                                               inverse_field)
  assert float(cycle) == pytest.approx(0.0, abs=1e-6)
  assert float(losses.translation_cycle_consistency(coords, mask, rotation, translation, rotation,
                                                    translation)) > 0.5
  assert float(losses.translation_cycle_consistency(coords, tf.zeros_like(mask), rotation, translation, rotation,
                                                    translation)) == 0.0


def _pair_gradients(image_j, depth_j, angles, translation, image_i, depth_i, residual=None, weights=None):
  """Total weighted loss of a directed pair (with its inverse) and its gradients."""
  with tf.GradientTape(persistent=True) as tape:
    for tensor in (depth_j, depth_i, angles, translation) + ((residual,) if residual is not None else ()):
      tape.watch(tensor)
    inverse_rotation, inverse_translation = geometry.invert_motion(geometry.matrix_from_angles(angles), translation)
    values, _ = losses.directed_pair_losses(
        image_j, depth_j, angles, translation, _intrinsics(depth_j.shape[0]), image_i, depth_i,
        residual_translation=residual,
        inverse_rotation=inverse_rotation * 0.99, inverse_translation=inverse_translation * 0.9,
        inverse_residual_translation=residual)
    total, weighted = losses.weighted_total(values, weights or losses.loss_weights())
  sources = {"depth_j": depth_j, "depth_i": depth_i, "rotation": angles, "translation": translation}
  if residual is not None:
    sources["residual"] = residual
  gradients = {name: tape.gradient(total, source) for name, source in sources.items()}
  return values, total, gradients


def _assert_all_finite(values, total, gradients):
  for name, value in values.items():
    assert np.isfinite(value.numpy()), name
  assert np.isfinite(total.numpy())
  for name, gradient in gradients.items():
    assert gradient is not None, name
    assert np.all(np.isfinite(gradient.numpy())), name


def test_gradients_flow_to_depth_and_motion():
  image_j, image_i, depth_i, translation = _two_views([0.3, 0.0, 0.0])
  rotation = tf.constant([[0.01, -0.01, 0.005]] * BATCH)
  depth_j = _plane() * tf.random.stateless_uniform([BATCH, HEIGHT, WIDTH], seed=[1, 2], minval=0.9, maxval=1.1)
  residual = 0.01 * tf.random.stateless_normal([BATCH, HEIGHT, WIDTH, 3], seed=[3, 4])
  values, total, gradients = _pair_gradients(image_j, depth_j, rotation, translation + 0.02, image_i, depth_i,
                                             residual)
  _assert_all_finite(values, total, gradients)
  for name, gradient in gradients.items():
    assert float(tf.reduce_max(tf.abs(gradient))) > 0, name
  for name in ("motion_smoothness", "motion_drift", "rotation_cycle", "translation_cycle"):
    assert float(values[name]) > 0, name


NAN_CASES = ("depth_near_zero", "borders_and_flat_images", "all_invalid", "tiny_motion")


def _nan_case(case):
  """(image_j, depth_j, rotation, translation, image_i, depth_i) of a numerically hard case, batch BATCH."""
  image_j, image_i, depth_i, _ = _two_views([0.3, 0.0, 0.0])
  depth_j = _plane()
  rotation = tf.constant([[0.01, -0.01, 0.005]] * BATCH)
  translation = tf.constant([[0.1, 0.05, 0.1]] * BATCH)
  if case == "depth_near_zero":
    depth_j = tf.fill([BATCH, HEIGHT, WIDTH], 1e-12)
    depth_i = tf.concat([tf.fill([BATCH, HEIGHT, WIDTH // 2], 1e-30), tf.fill([BATCH, HEIGHT, WIDTH // 2], 1e-6)],
                        axis=2)
  elif case == "borders_and_flat_images":
    # Half the pixels leave the image; the images are flat, so every SSIM variance is (nearly) zero.
    image_j = tf.fill([BATCH, HEIGHT, WIDTH, 3], 0.7)
    image_i = tf.fill([BATCH, HEIGHT, WIDTH, 3], 0.2)
    translation = tf.constant([[2.4, 0.0, 0.0]] * BATCH)
  elif case == "all_invalid":
    translation = tf.constant([[0.0, 0.0, -10.0]] * BATCH)  # every point ends up behind camera i
  elif case == "tiny_motion":
    rotation = tf.fill([BATCH, 3], 1e-12)
    translation = tf.fill([BATCH, 3], 1e-20)
  return image_j, depth_j, rotation, translation, image_i, depth_i


def test_no_nan_in_values_or_gradients():
  """Every hard case in one batch (the losses are batch means, so a NaN anywhere shows); gradients per case."""
  inputs = [tf.concat(parts, axis=0) for parts in zip(*[_nan_case(case) for case in NAN_CASES])]
  residual = tf.zeros([BATCH * len(NAN_CASES), HEIGHT, WIDTH, 3])
  values, total, gradients = _pair_gradients(*inputs, residual=residual)
  _assert_all_finite(values, total, {})
  for name, gradient in gradients.items():
    assert gradient is not None, name
    for n, case in enumerate(NAN_CASES):
      assert np.all(np.isfinite(gradient[n * BATCH:(n + 1) * BATCH].numpy())), (case, name)
  # All invalid: nothing is compared, so the photometric and depth terms are exactly 0.
  values, masks = losses.directed_pair_losses(*_nan_case("all_invalid")[:4], _intrinsics(),
                                              *_nan_case("all_invalid")[4:])
  assert float(tf.reduce_max(masks["valid"])) == 0.0
  for name in ("rgb", "ssim", "depth_consistency"):
    assert float(values[name]) == 0.0, name


def test_weighted_ssim():
  x = _textured_image()
  weight = tf.ones([BATCH, HEIGHT, WIDTH])
  dissimilarity, pooled = photometric.weighted_ssim(x, x, weight)
  assert dissimilarity.shape == (BATCH, HEIGHT - 2, WIDTH - 2, 3)
  assert pooled.shape == (BATCH, HEIGHT - 2, WIDTH - 2, 1)
  assert float(tf.reduce_max(dissimilarity)) < 1e-5
  # An inverted image is maximally dissimilar in structure: SSIM -1 -> (1 - SSIM) / 2 close to 1.
  dissimilarity, _ = photometric.weighted_ssim(x, 1.0 - x, weight)
  assert float(tf.reduce_mean(dissimilarity)) > 0.9
  # A zero weight in one window leaves the pooled weight at zero there.
  zero_weight = tf.zeros([BATCH, HEIGHT, WIDTH])
  assert float(photometric.weighted_ssim_loss(x, 1.0 - x, zero_weight)) == 0.0
  with pytest.raises(ValueError, match="both infinite"):
    photometric.weighted_ssim(x, x, weight, c1=float("inf"), c2=float("inf"))


def test_weights_presets_and_overrides():
  original = losses.loss_weights()
  assert original == losses.WEIGHT_PRESETS["original"]
  assert sorted(original) == sorted(losses.LOSS_TERMS)
  assert original["rgb"] == 0.85 and original["ssim"] == 3.0 and original["translation_cycle"] == 1e-2
  later = losses.loss_weights(preset="later")
  assert later["translation_cycle"] == pytest.approx(2 * 5e-2) and later["depth_consistency"] == 0.0
  merged = losses.loss_weights({"ssim": 1.5}, preset="later")
  assert merged["ssim"] == 1.5 and merged["rgb"] == later["rgb"]
  assert losses.WEIGHT_PRESETS["later"]["ssim"] == 6.0  # the preset itself is untouched
  with pytest.raises(ValueError, match=r"Unknown loss weight.*'smoothness'.*Known weights"):
    losses.loss_weights({"smoothness": 1.0})
  with pytest.raises(ValueError, match="preset"):
    losses.loss_weights(preset="newest")


def test_weighted_total_applies_each_weight_once_and_ramps():
  values = {name: tf.constant(float(i + 1)) for i, name in enumerate(losses.LOSS_TERMS)}
  weights = losses.loss_weights({"motion_drift": lambda step: tf.minimum(tf.cast(step, tf.float32) / 10.0, 1.0)})
  total, weighted = losses.weighted_total(values, weights, step=5)
  for i, name in enumerate(losses.LOSS_TERMS):
    expected = (i + 1) * (0.5 if name == "motion_drift" else weights[name])
    assert float(weighted[name]) == pytest.approx(expected)
  assert float(total) == pytest.approx(sum(float(v) for v in weighted.values()))
  with pytest.raises(ValueError, match="No weight"):
    losses.weighted_total({"bogus": tf.constant(1.0)}, weights)


def test_clip_losses_sum_the_directed_pairs_of_a_triplet():
  images = tf.stack([_textured_image(seed=s) for s in range(3)], axis=1)
  depths = tf.stack([_plane() * (1.0 + 0.1 * s) for s in range(3)], axis=1)
  k = _intrinsics()
  motions = {}
  for n, (i, j) in enumerate(losses.directed_pairs(3)):
    motions[(i, j)] = {"rotation": tf.fill([BATCH, 3], 0.01 * (n + 1)), "translation": tf.fill([BATCH, 3], 0.05),
                       "intrinsics": k * (1.0 + 0.01 * n) + tf.constant([[0, 0, 0], [0, 0, 0], [0, 0, -0.01 * n]])}
  assert losses.directed_pairs(3) == [(0, 1), (1, 0), (1, 2), (2, 1)]
  totals, masks = losses.clip_losses(images, depths, motions, intrinsics=k)
  assert sorted(masks) == [(0, 1), (1, 0), (1, 2), (2, 1)]
  expected = {name: 0.0 for name in losses.LOSS_TERMS}
  for i, j in losses.directed_pairs(3):
    values, _ = losses.directed_pair_losses(
        images[:, j], depths[:, j], motions[(i, j)]["rotation"], motions[(i, j)]["translation"], k, images[:, i],
        depths[:, i], inverse_rotation=motions[(j, i)]["rotation"], inverse_translation=motions[(j, i)]["translation"])
    for name in losses.LOSS_TERMS:
      expected[name] += float(values[name])
  expected["depth_smoothness"] = sum(float(losses.depth_smoothness(depths[:, t], images[:, t])) for t in range(3))
  for name in losses.LOSS_TERMS:
    assert float(totals[name]) == pytest.approx(expected[name], rel=1e-5, abs=1e-7), name
  # Without known K, the average of the two directions' predictions is used.
  totals_learned, _ = losses.clip_losses(images[:, :2], depths[:, :2], motions)
  average = 0.5 * (motions[(0, 1)]["intrinsics"] + motions[(1, 0)]["intrinsics"])
  totals_average, _ = losses.clip_losses(images[:, :2], depths[:, :2], motions, intrinsics=average)
  for name in losses.LOSS_TERMS:
    assert float(totals_learned[name]) == pytest.approx(float(totals_average[name]), rel=1e-6, abs=1e-8)
  with pytest.raises(ValueError, match="Missing"):
    losses.clip_losses(images, depths, {(0, 1): motions[(0, 1)]})


def _one_pass_ssim_reference(x, y, weight, c2=9e-6, eps=0.01):
  """The original's formulation (avgpool(z (w + eps)) / (avgpool(w) + eps), E[z^2] - E[z]^2), in float64 NumPy."""
  x, y, w = (np.asarray(v, np.float64) for v in (x, y, weight))
  w = w[..., None]

  def pool(z):
    return sum(z[:, dy:z.shape[1] - 2 + dy, dx:z.shape[2] - 2 + dx] for dy in range(3) for dx in range(3)) / 9.0

  pooled = pool(w)

  def wavg(z):
    return pool(z * (w + eps)) / (pooled + eps)

  mu_x, mu_y = wavg(x), wavg(y)
  sigma_x, sigma_y = wavg(x * x) - mu_x ** 2, wavg(y * y) - mu_y ** 2
  sigma_xy = wavg(x * y) - mu_x * mu_y
  ssim = (2 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
  return np.clip((1 - ssim) / 2, 0, 1), pooled


def test_weighted_ssim_matches_the_original_formulation_on_textured_images():
  x = _textured_image(seed=1)
  y = _textured_image(seed=2)
  weight = tf.random.stateless_uniform([BATCH, HEIGHT, WIDTH], seed=[5, 6])
  dissimilarity, pooled = photometric.weighted_ssim(x, y, weight)
  expected, expected_pooled = _one_pass_ssim_reference(x, y, weight)
  np.testing.assert_allclose(dissimilarity, expected, atol=1e-4)
  np.testing.assert_allclose(pooled, expected_pooled, atol=1e-6)



def test_photometric_gradient_moves_a_perturbed_depth_towards_the_truth():
  # The 4-pixel shift of test_true_motion_beats_perturbed_motions, seen with frame j's depth off by up to +-10 %
  # (a smooth field): the negative gradient of RGB + SSIM with respect to that depth must point towards the truth.
  image_j, image_i, depth_i, translation = _two_views([0.3, 0.0, 0.0])
  y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
  field = 0.1 * np.sin(0.15 * x + 0.1 * y)[np.newaxis]
  truth = _plane()
  depth_j = tf.Variable(truth * (1.0 + field))
  with tf.GradientTape() as tape:
    values, masks = losses.directed_pair_losses(image_j, depth_j, tf.zeros([BATCH, 3]), translation, _intrinsics(),
                                                image_i, depth_i)
    loss = values["rgb"] + values["ssim"]
  gradient = tape.gradient(loss, depth_j)
  direction = truth - depth_j
  cosine = float(tf.reduce_sum(-gradient * direction) / (tf.norm(gradient) * tf.norm(direction)))
  assert cosine > 0.3, cosine  # 0.66 when written
  # Where the perturbed depth is closer than frame i's surface, the pixel counts in the RGB term (strict test).
  assert 0.2 < float(tf.reduce_mean(masks["visible"])) < 0.8


def test_strict_occlusion_test_drops_pixels_at_the_true_geometry():
  # The original's visibility test is strict (warped depth < the other frame's depth): at exactly consistent depths
  # every pixel ties and is dropped from the RGB term (on synthetic ground truth, rounding leaves about half).
  # This documents the behaviour that the README's depth_motion findings describe.
  image_j, image_i, depth_i, translation = _two_views([0.3, 0.0, 0.0])
  _, masks = losses.directed_pair_losses(image_j, _plane(), tf.zeros([BATCH, 3]), translation, _intrinsics(),
                                         image_i, depth_i)
  inside = float(tf.reduce_mean(masks["valid"]))
  assert inside > 0.9
  assert float(tf.reduce_mean(masks["visible"])) < 0.1 * inside


def test_occlusion_tolerance_keeps_consistent_pixels_and_still_masks_occluded_ones():
  # With a relative tolerance the tied pixels of the test above stay visible; a point clearly behind frame i's
  # surface (frame i's depth 20 % nearer there) is still masked.
  image_j, image_i, depth_i, translation = _two_views([0.3, 0.0, 0.0])
  _, masks = losses.directed_pair_losses(image_j, _plane(), tf.zeros([BATCH, 3]), translation, _intrinsics(),
                                         image_i, depth_i, occlusion_tolerance=0.05)
  np.testing.assert_array_equal(masks["visible"].numpy(), masks["valid"].numpy())
  occluder = np.ones([BATCH, HEIGHT, WIDTH], np.float32)
  occluder[:, :, :WIDTH // 2] = 0.8
  _, masks = losses.directed_pair_losses(image_j, _plane(), tf.zeros([BATCH, 3]), translation, _intrinsics(),
                                         image_i, depth_i * occluder, occlusion_tolerance=0.05)
  visible, valid = masks["visible"].numpy(), masks["valid"].numpy()
  # Frame j's pixels move by fx t / z = 40 x 0.3 / 3 = 4 px: away from the split they see the same half of frame i.
  assert not visible[:, :, :WIDTH // 2 - 8][valid[:, :, :WIDTH // 2 - 8] > 0].any()
  assert visible[:, :, WIDTH // 2 + 8:].sum() == valid[:, :, WIDTH // 2 + 8:].sum()


def test_box_blur_known_answers():
  constant = tf.fill([1, 7, 9, 3], 0.3)
  np.testing.assert_allclose(photometric.box_blur(constant, 5), constant, atol=1e-7)  # the border too
  impulse = np.zeros([1, 7, 9, 1], np.float32)
  impulse[0, 3, 4, 0] = 9.0
  expected = np.zeros_like(impulse)
  expected[0, 2:5, 3:6, 0] = 1.0
  np.testing.assert_allclose(photometric.box_blur(impulse, 3), expected, atol=1e-6)
  np.testing.assert_array_equal(photometric.box_blur(impulse, 1), impulse)
  with pytest.raises(ValueError, match="positive"):
    photometric.box_blur(impulse, 0)


def test_photometric_blurs_average_the_rgb_and_ssim_terms_of_each_level():
  image_j, image_i, depth_i, translation = _two_views([0.3, 0.0, 0.0])
  wrong = translation + [[0.1, 0.0, 0.0]]  # 1.3 px off

  def pair_losses(blurs, motion=wrong):
    values, masks = losses.directed_pair_losses(image_j, _plane(), tf.zeros([BATCH, 3]), motion, _intrinsics(),
                                                image_i, depth_i, occlusion_tolerance=0.05, photometric_blurs=blurs)
    return {name: float(value) for name, value in values.items()}, masks

  default, _ = losses.directed_pair_losses(image_j, _plane(), tf.zeros([BATCH, 3]), wrong, _intrinsics(), image_i,
                                           depth_i, occlusion_tolerance=0.05)
  sharp, sharp_masks = pair_losses((1,))
  blurred, _ = pair_losses((5,))
  both, both_masks = pair_losses((1, 5))
  assert sharp == {name: float(value) for name, value in default.items()}
  assert blurred["rgb"] < sharp["rgb"]  # blurring removes part of the misaligned texture
  for name in ("rgb", "ssim"):
    assert both[name] == pytest.approx(0.5 * (sharp[name] + blurred[name]), rel=1e-5)
  for name in set(losses.LOSS_TERMS) - {"rgb", "ssim"}:
    assert both[name] == pytest.approx(sharp[name], rel=1e-6, abs=1e-9)
  np.testing.assert_array_equal(both_masks["reconstruction"], sharp_masks["reconstruction"])
  # At the true motion every level matches, up to the image border (frame i was rendered with clamped borders).
  true, _ = pair_losses((1, 5), motion=translation)
  assert true["rgb"] < 0.1 * both["rgb"]
  with pytest.raises(ValueError, match="photometric_blurs"):
    pair_losses(())

"""Unsupervised depth / egomotion / intrinsics losses of Depth from Videos in the Wild, as pure functions.

A *directed pair* (i, j) is what the motion network predicts from the input order (image_i, image_j): the motion
carrying camera-j points into camera i. Its losses live on frame j's pixel grid: frame j's depth is warped into
frame i (`geometry.depth_warp`), frame i's image and depth are resampled there (`geometry.resample`), and they are
compared with frame j where frame j's point is visible in frame i (`geometry.closer_to_camera`).

  directed_pair_losses(...)  every unweighted term of one directed pair -> (losses, masks)
  clip_losses(...)           sums the directed pairs of a pair (0->1, 1->0) or triplet (0->1, 1->0, 1->2, 2->1)
  loss_weights(...)          a preset ("original" or "later") merged with overrides; unknown keys raise
  weighted_total(...)        the one place where weights are applied -> (total, weighted terms)

Unweighted terms (keys of every loss dict, see LOSS_TERMS): rgb, ssim, depth_smoothness, depth_consistency,
motion_smoothness, motion_drift, rotation_cycle, translation_cycle.
"""

import tensorflow as tf

from depth_motion import geometry
from depth_motion import photometric

LOSS_TERMS = ("rgb", "ssim", "depth_smoothness", "depth_consistency", "motion_smoothness", "motion_drift",
              "rotation_cycle", "translation_cycle")

WEIGHT_PRESETS = {
    # depth_from_video_in_the_wild (Gordon et al. 2019).
    "original": {"rgb": 0.85, "ssim": 3.0, "depth_smoothness": 1e-2, "depth_consistency": 1e-2,
                 "motion_smoothness": 1e-3, "motion_drift": 0.0, "rotation_cycle": 1e-3, "translation_cycle": 1e-2},
    # depth_and_motion_learning: rgb 1, ssim 3, smoothness 1e-3, depth consistency 0, motion smoothness 1, motion
    # drift 0.2, rotation cycle 1e-3, translation cycle 5e-2, each times the factor 2 that code applies to every
    # weighted term.
    "later": {"rgb": 2.0, "ssim": 6.0, "depth_smoothness": 2e-3, "depth_consistency": 0.0,
              "motion_smoothness": 2.0, "motion_drift": 0.4, "rotation_cycle": 2e-3, "translation_cycle": 0.1},
}
DEFAULT_PRESET = "original"

# Disparity is 1 / max(depth, MIN_DEPTH): the softplus depth is positive but may underflow towards 0.
MIN_DEPTH = 1e-6
# Added to the weighted second moment of depth differences (the original's constant).
DEPTH_PROXIMITY_EPSILON = 1e-4


def loss_weights(overrides=None, preset=DEFAULT_PRESET):
  """The loss weights: a named preset merged with overrides.

  Args:
    overrides: optional {term: weight}; a weight is a float or a function of the training step (a ramp), called by
      `weighted_total`. Keys must be in LOSS_TERMS.
    preset: "original" or "later" (see WEIGHT_PRESETS).

  Returns:
    A new dict {term: weight} with every key of LOSS_TERMS.

  Raises:
    ValueError: for an unknown preset or override key.
  """
  if preset not in WEIGHT_PRESETS:
    raise ValueError(f"Unknown loss weight preset {preset!r}. Known presets: {sorted(WEIGHT_PRESETS)}")
  weights = dict(WEIGHT_PRESETS[preset])
  overrides = dict(overrides or {})
  unknown = sorted(set(overrides) - set(weights))
  if unknown:
    raise ValueError(f"Unknown loss weight(s) {unknown}. Known weights: {list(LOSS_TERMS)}")
  weights.update(overrides)
  return weights


def weighted_total(losses, weights=None, step=None):
  """Applies the weights (the only place they are applied) and sums.

  Args:
    losses: {term: float32 scalar}, unweighted, e.g. from `clip_losses` (keys in LOSS_TERMS).
    weights: from `loss_weights`; None = the default preset.
    step: the global training step, passed to weights that are functions of it.

  Returns:
    (total float32 scalar, {term: weighted float32 scalar}).
  """
  weights = loss_weights() if weights is None else weights
  missing = sorted(set(losses) - set(weights))
  if missing:
    raise ValueError(f"No weight for loss term(s) {missing}. Received weights for: {sorted(weights)}")
  weighted = {}
  for name, value in losses.items():
    weight = weights[name]
    if callable(weight):
      weight = weight(step)
    weighted[name] = tf.cast(weight, tf.float32) * value
  total = tf.add_n(list(weighted.values())) if weighted else tf.constant(0.0)
  return total, weighted


def _rotation_matrix(rotation):
  """[B, 3] Euler angles (as the motion network predicts) or [B, 3, 3] matrices -> [B, 3, 3]."""
  rotation = tf.convert_to_tensor(rotation, tf.float32)
  if rotation.shape.rank == 2:
    return geometry.matrix_from_angles(rotation)
  if rotation.shape.rank == 3:
    return rotation
  raise ValueError(f"rotation must be [B, 3] angles or [B, 3, 3] matrices. Received: shape {rotation.shape}")


def _weighted_average(x, weight, epsilon=1.0):
  """Per-sample sum(x w) / (sum(w) + epsilon) over H, W: [B, H, W] -> [B, 1, 1]."""
  weighted_sum = tf.reduce_sum(x * weight, axis=[1, 2], keepdims=True)
  return weighted_sum / (tf.reduce_sum(weight, axis=[1, 2], keepdims=True) + epsilon)


def normalized_disparity(depth):
  """1 / depth divided by its per-image mean: [B, H, W] -> [B, H, W] (scale-free, mean 1)."""
  disparity = 1.0 / tf.maximum(tf.cast(depth, tf.float32), MIN_DEPTH)
  return disparity / tf.reduce_mean(disparity, axis=[1, 2], keepdims=True)


def depth_smoothness(depth, image):
  """Edge-aware smoothness of the normalized disparity.

  mean |d_x disp| exp(-mean_c |d_x image|) + mean |d_y disp| exp(-mean_c |d_y image|), with forward differences
  and disp = `normalized_disparity(depth)`.

  Args:
    depth: [B, H, W] positive depth.
    image: [B, H, W, C] the same frame's image in [0, 1].

  Returns:
    float32 scalar.
  """
  disparity = normalized_disparity(depth)[..., tf.newaxis]
  image = tf.cast(image, tf.float32)

  def dx(z):
    return z[:, :, :-1, :] - z[:, :, 1:, :]

  def dy(z):
    return z[:, :-1, :, :] - z[:, 1:, :, :]

  weight_x = tf.exp(-tf.reduce_mean(tf.abs(dx(image)), axis=-1, keepdims=True))
  weight_y = tf.exp(-tf.reduce_mean(tf.abs(dy(image)), axis=-1, keepdims=True))
  return (tf.reduce_mean(tf.abs(dx(disparity)) * weight_x) +
          tf.reduce_mean(tf.abs(dy(disparity)) * weight_y))


def motion_field_smoothness(field):
  """Total variation of a translation field normalized by its RMS, with wrap-around differences.

  The field is divided by sqrt(3 mean(t^2) + 1e-12) per sample; differences are taken against the field rolled by
  one pixel, so the first and last rows/columns are tied too (the original's choice: it pushes spatial gradients of
  translation into the rotation). Loss = mean sqrt(1e-24 + dx^2 + dy^2).

  Args:
    field: [B, H, W, 3] translation field.

  Returns:
    float32 scalar.
  """
  field = tf.cast(field, tf.float32)
  norm = 3.0 * tf.reduce_mean(tf.square(field), axis=[1, 2, 3], keepdims=True)
  field = field / tf.sqrt(norm + 1e-12)
  field_dx = field - tf.roll(field, 1, axis=1)
  field_dy = field - tf.roll(field, 1, axis=2)
  return tf.reduce_mean(tf.sqrt(1e-24 + tf.square(field_dx) + tf.square(field_dy)))


def motion_drift(residual_field):
  """Square-root sparsity of the residual translation field (the later code's "motion drift" regularizer).

  mean(2 m sqrt(|t| / m + 1)) with m the per-sample, per-channel mean of |t|: L1-like near zero, weaker far away.

  Args:
    residual_field: [B, H, W, 3].

  Returns:
    float32 scalar.
  """
  magnitude = tf.abs(tf.cast(residual_field, tf.float32))
  # stop_gradient: m only sets the scale separating "small" from "large" motion; shrinking the scale itself is not
  # what the regularizer asks for (as in the later code).
  mean = tf.stop_gradient(tf.reduce_mean(magnitude, axis=[1, 2], keepdims=True))
  return tf.reduce_mean(2.0 * mean * tf.sqrt(magnitude / (mean + 1e-24) + 1.0))


def rotation_cycle_consistency(rotation1, rotation2):
  """How far R2 R1 is from the identity, relative to how far R1 and R2 are.

  Per sample ||R2 R1 - I||^2 / (||R1 - I||^2 + ||R2 - I||^2 + 1e-24) (mean over matrix entries), averaged over the
  batch. The normalization makes the loss blind to the rotation magnitude, so it does not push rotations to zero.

  Args:
    rotation1: [B, 3] angles or [B, 3, 3], the motion j -> i.
    rotation2: [B, 3] angles or [B, 3, 3], the motion i -> j.

  Returns:
    float32 scalar; 0 when R2 = R1^T.
  """
  rotation1 = _rotation_matrix(rotation1)
  rotation2 = _rotation_matrix(rotation2)
  eye = tf.eye(3)
  error = tf.reduce_mean(tf.square(tf.matmul(rotation2, rotation1) - eye), axis=[1, 2])
  scale1 = tf.reduce_mean(tf.square(rotation1 - eye), axis=[1, 2])
  scale2 = tf.reduce_mean(tf.square(rotation2 - eye), axis=[1, 2])
  return tf.reduce_mean(error / (1e-24 + scale1 + scale2))


def translation_cycle_consistency(coords, mask, rotation1, translation1, rotation2, translation2):
  """How far composing the motion j -> i with the motion i -> j is from zero translation, per pixel.

  mean(mask ||R2 t1 + t2||^2 / (||t1||^2 + ||t2||^2 + 1e-24)), where t2 is the i -> j translation field resampled
  at the coordinates where frame j's pixels land in frame i.

  Args:
    coords: [B, H, W, 2] where each pixel of frame j lands in frame i (`DepthWarp.coords`).
    mask: [B, H, W] float or bool, where the pixel counts (visible in frame i).
    rotation1: [B, 3] angles or [B, 3, 3], the motion j -> i.
    translation1: [B, 3] or a [B, H, W, 3] field on frame j's grid.
    rotation2: [B, 3] angles or [B, 3, 3], the motion i -> j.
    translation2: [B, 3] or a [B, H, W, 3] field on frame i's grid.

  Returns:
    float32 scalar.
  """
  coords = tf.convert_to_tensor(coords, tf.float32)
  shape = tf.shape(coords)
  field_shape = tf.concat([shape[:3], [3]], axis=0)
  translation1 = tf.broadcast_to(geometry.translation_field(translation1), field_shape)
  translation2 = tf.convert_to_tensor(translation2, tf.float32)
  if translation2.shape.rank == 4:
    # stop_gradient: the coordinates only say where to read frame i's field; the cycle loss should correct the
    # motions, not move the correspondence (and through it the depth) to where the fields happen to cancel.
    translation2 = geometry.resample(translation2, tf.stop_gradient(coords), boundary="border")
  translation2 = tf.broadcast_to(geometry.translation_field(translation2), field_shape)
  _, cycle = geometry.compose_motions(_rotation_matrix(rotation1), translation1, _rotation_matrix(rotation2),
                                      translation2)

  def norm2(x):
    return tf.reduce_sum(tf.square(x), axis=-1)

  ratio = norm2(cycle) / (1e-24 + norm2(translation1) + norm2(translation2))
  return tf.reduce_mean(tf.where(tf.cast(mask, tf.bool), ratio, 0.0))


def directed_pair_losses(image_j, depth_j, rotation, translation, intrinsics, image_i, depth_i,
                         residual_translation=None, inverse_rotation=None, inverse_translation=None,
                         inverse_residual_translation=None, occlusion_tolerance=0.0, photometric_blurs=(1,)):
  """Every unweighted loss term of one directed pair, on frame j's pixel grid.

  Args:
    image_j: [B, H, W, 3] frame j in [0, 1].
    depth_j: [B, H, W] frame j's predicted depth (> 0).
    rotation: [B, 3] angles or [B, 3, 3]: the motion j -> i (motion net input order (i, j)).
    translation: [B, 3] background translation j -> i (or already a [B, H, W, 3] field on frame j's grid).
    intrinsics: [B, 3, 3], shared by both frames.
    image_i: [B, H, W, 3] frame i.
    depth_i: [B, H, W] frame i's predicted depth.
    residual_translation: optional [B, H, W, 3] residual field of the motion j -> i, on frame j's grid.
    inverse_rotation, inverse_translation, inverse_residual_translation: the motion i -> j (input order (j, i)),
      its field on frame i's grid; needed for the cycle terms, which are 0 without it.
    occlusion_tolerance: relative depth tolerance of the visibility test (`geometry.closer_to_camera`). 0 is the
      original's strict z < resampled depth, which drops about half of the pixels at consistent depths (ties decided
      by resampling noise); a few percent keeps them and masks only points clearly behind frame i's surface.
    photometric_blurs: box filter sizes (`photometric.box_blur`) at which the RGB and SSIM terms compare the two
      frames; the terms are the mean over them. (1,) is the original (full resolution only). A blurred level widens
      the basin of the photometric loss: a motion error of a few pixels still changes the blurred comparison smoothly,
      where the sharp one sees unrelated texture. The geometry (warp, visibility, depth terms) stays at full
      resolution.

  Returns:
    (losses, masks):
      losses: {term: float32 scalar} for every term in LOSS_TERMS, unweighted:
        rgb                 mean |frame i on j - frame j| over visible pixels (masked pixels count as 0), averaged
                            over `photometric_blurs`
        ssim                0.5 mean(clip((1 - SSIM) / 2, 0, 1) x pooled depth-proximity weight), averaged likewise
        depth_smoothness    edge-aware smoothness of frame j's normalized disparity
        depth_consistency   mean |depth i resampled - warped depth j| over visible pixels
        motion_smoothness   smoothness of the j -> i translation field (0 for a [B, 3] translation)
        motion_drift        square-root sparsity of the residual field (0 without one)
        rotation_cycle      rotation cycle consistency with the inverse motion (0 without it)
        translation_cycle   translation cycle consistency with the inverse motion (0 without it)
      masks: {"visible": [B, H, W] float32 (valid and frame j closer to camera),
              "valid": [B, H, W] float32 (lands inside frame i, in front of the camera),
              "depth_proximity_weight": [B, H, W] float32 SSIM weight,
              "reconstruction": [B, H, W, 3] frame i resampled onto frame j's grid (blurred by photometric_blurs[0]),
              "coords": [B, H, W, 2] where frame j's pixels land in frame i}.
  """
  image_j = tf.convert_to_tensor(image_j, tf.float32)
  image_i = tf.convert_to_tensor(image_i, tf.float32)
  depth_j = tf.convert_to_tensor(depth_j, tf.float32)
  depth_i = tf.convert_to_tensor(depth_i, tf.float32)
  rotation_matrix = _rotation_matrix(rotation)
  field = tf.convert_to_tensor(translation, tf.float32)
  if residual_translation is not None:
    field = geometry.translation_field(field, residual_translation)
  warp = geometry.depth_warp(depth_j, rotation_matrix, field, intrinsics)

  blurs = tuple(photometric_blurs)
  if not blurs:
    raise ValueError("directed_pair_losses: photometric_blurs must name at least one box filter size, e.g. (1,).")
  # Out-of-range coordinates are clamped (as the original does before resampling); those pixels are masked anyway.
  # Every blurred copy of frame i and its depth are resampled together, in one gather.
  resampled = geometry.resample(
      tf.concat([photometric.box_blur(image_i, size) for size in blurs] + [depth_i[..., tf.newaxis]], axis=-1),
      warp.coords, boundary="border")
  reconstructions = [resampled[..., 3 * level:3 * level + 3] for level in range(len(blurs))]
  depth_i_resampled = resampled[..., -1]
  visible = geometry.closer_to_camera(warp, depth_i_resampled, relative_tolerance=occlusion_tolerance)
  visible_f = tf.cast(visible, tf.float32)
  valid_f = tf.cast(warp.valid, tf.float32)

  depth_difference = tf.where(warp.valid, depth_i_resampled - warp.depth, 0.0)
  depth_consistency = tf.reduce_mean(tf.abs(depth_difference) * visible_f)

  # The SSIM weight falls from 1 where the two depths agree (relative to the frame's typical disagreement) to 0
  # where they do not: structure is compared only between surfaces that match.
  squared_difference = tf.square(depth_difference)
  second_moment = _weighted_average(squared_difference, visible_f) + DEPTH_PROXIMITY_EPSILON
  proximity = second_moment / (squared_difference + second_moment) * valid_f
  # stop_gradient: with a gradient through the weight, the network lowers the SSIM term by pushing the two depths
  # apart instead of matching the images, and training does not start (the original's finding).
  proximity = tf.stop_gradient(proximity)
  targets = [photometric.box_blur(image_j, size) for size in blurs]
  rgb = tf.add_n([photometric.masked_l1(target, reconstruction, visible_f)
                  for target, reconstruction in zip(targets, reconstructions)]) / len(blurs)
  ssim = 0.5 * tf.add_n([photometric.weighted_ssim_loss(reconstruction, target, proximity)
                         for target, reconstruction in zip(targets, reconstructions)]) / len(blurs)

  zero = tf.constant(0.0)
  # A [B, 3] translation is one constant field: no spatial variation, so skip the sqrt at exactly zero differences.
  motion_smoothness = zero if field.shape.rank == 2 else motion_field_smoothness(field)
  drift = zero if residual_translation is None else motion_drift(residual_translation)

  if inverse_rotation is None or inverse_translation is None:
    rotation_cycle = zero
    translation_cycle = zero
  else:
    inverse_field = inverse_translation
    if inverse_residual_translation is not None:
      inverse_field = geometry.translation_field(inverse_translation, inverse_residual_translation)
    rotation_cycle = rotation_cycle_consistency(rotation_matrix, inverse_rotation)
    translation_cycle = translation_cycle_consistency(warp.coords, visible, rotation_matrix, field,
                                                      inverse_rotation, inverse_field)

  losses = {"rgb": rgb, "ssim": ssim, "depth_smoothness": depth_smoothness(depth_j, image_j),
            "depth_consistency": depth_consistency, "motion_smoothness": motion_smoothness, "motion_drift": drift,
            "rotation_cycle": rotation_cycle, "translation_cycle": translation_cycle}
  masks = {"visible": visible_f, "valid": valid_f, "depth_proximity_weight": proximity,
           "reconstruction": reconstructions[0], "coords": warp.coords}
  return losses, masks


def directed_pairs(num_frames):
  """The directed pairs of a clip, in the original's order: (0, 1), (1, 0), (1, 2), (2, 1), ..."""
  pairs = []
  for i in range(num_frames - 1):
    pairs += [(i, i + 1), (i + 1, i)]
  return pairs


def clip_losses(images, depths, motions, intrinsics=None, occlusion_tolerance=0.0, photometric_blurs=(1,)):
  """Sums the directed-pair losses of a clip (T = 2: 0->1, 1->0; T = 3: 0->1, 1->0, 1->2, 2->1).

  Depth smoothness is added once per frame (as the original does), not once per directed pair.

  Args:
    images: [B, T, H, W, 3] in [0, 1] (T static).
    depths: [B, T, H, W] predicted depths.
    motions: {(i, j): MotionNet output for inputs image_i = frame i, image_j = frame j} for every pair of
      `directed_pairs(T)`; each a dict with "rotation" [B, 3], "translation" [B, 3], optionally
      "residual_translation" [B, H, W, 3], and "intrinsics" [B, 3, 3].
    intrinsics: [B, 3, 3] known K; None uses the average of the two directions' predicted K (the original).
    occlusion_tolerance: relative depth tolerance of the visibility test (see `directed_pair_losses`).
    photometric_blurs: box filter sizes of the photometric comparison (see `directed_pair_losses`).

  Returns:
    (losses {term: float32 scalar} summed over directed pairs, masks {(i, j): that pair's masks}).
  """
  images = tf.convert_to_tensor(images, tf.float32)
  depths = tf.convert_to_tensor(depths, tf.float32)
  num_frames = images.shape[1]
  if num_frames is None or num_frames < 2:
    raise ValueError(f"clip_losses needs a static clip length T >= 2. Received: images of shape {images.shape}")
  pairs = directed_pairs(num_frames)
  missing = [pair for pair in pairs if pair not in motions]
  if missing:
    raise ValueError(f"clip_losses needs the motion of every directed pair {pairs}. Missing: {missing}")

  totals = {name: tf.constant(0.0) for name in LOSS_TERMS}
  all_masks = {}
  for i, j in pairs:
    motion, inverse = motions[(i, j)], motions[(j, i)]
    k = intrinsics
    if k is None:
      k = 0.5 * (motion["intrinsics"] + inverse["intrinsics"])
    losses, masks = directed_pair_losses(
        images[:, j], depths[:, j], motion["rotation"], motion["translation"], k, images[:, i], depths[:, i],
        residual_translation=motion.get("residual_translation"), inverse_rotation=inverse["rotation"],
        inverse_translation=inverse["translation"],
        inverse_residual_translation=inverse.get("residual_translation"), occlusion_tolerance=occlusion_tolerance,
        photometric_blurs=photometric_blurs)
    for name in LOSS_TERMS:
      if name != "depth_smoothness":
        totals[name] += losses[name]
    all_masks[(i, j)] = masks
  totals["depth_smoothness"] = tf.add_n([depth_smoothness(depths[:, t], images[:, t]) for t in range(num_frames)])
  return totals, all_masks

"""The unsupervised losses of Every Frame Counts (EFC, Ding et al. AAAI 2020), as pure functions.

For a pair (I_i, I_j) the flow branch predicts F_{i->j} and the occlusion O_est of frame i (the probability that a
pixel of i has no correspondence in j); warping is backward: X~ = Warp(X_j, F_{i->j}) samples X_j at x + F(x).

  occlusion target   O^ = 1 where x + F(x) leaves the image (0 <= x <= W - 1, 0 <= y <= H - 1), else 0
  L_occ  = mean[ -log p(O_est = O^) - alpha exp(-O_est) ]                                   (paper eq. 4, alpha 0.2)
  O_seg  = argmax M_i != argmax M~_i, M~_i = Warp(softmax M_j, F) (bilinear)
  O_error = max(O_seg - O_est, 0)                                                            (eq. 5)
  L_pm   = mean[ G(I_i, I~_i) (1 + O_error - O_est) ],
           G = beta (1 - SSIM) / 2 + (1 - beta) |I - I~|_1, beta = 0.85                      (eq. 6)
  L_sm   = mean[ |d_x F| exp(-|d_x I|) + |d_y F| exp(-|d_y I|) ]                             (eq. 7)
  L_cons = mean[ (1 - O_est) ||S~_i - S_i||_2 ] over shared-encoder features S                (eq. 2)
  L      = L_seg + lambda_cons L_cons + lambda_occ L_occ + lambda_sm L_sm + lambda_pm L_pm    (eq. 9)
           lambda_cons = 10, lambda_occ = 0.4, lambda_sm = 0.5, lambda_pm = 1 (`DEFAULT_WEIGHTS`)

Both directions: the functions take a batch of *directed* pairs, so the caller stacks (i, j) and (j, i) along the
batch axis (source = [I_a; I_b], target = [I_b; I_a]) and the means cover both. Several scales: photometric,
smoothness and occlusion terms are evaluated at each of `loss_levels` (level l = 1/2^l of the image; level 0 is the
full image, with the finest flow and occlusion logits upsampled bilinearly), consistency at each of
`consistency_levels` of the encoder; each term is the mean over its levels.

Deliberate choices where the paper is silent or loose (documented in docs/stages.md too):
  - Means, not sums, over pixels (and over levels and directions): the weights keep their meaning at any resolution.
  - The occlusion target follows the paper's definition ("has a corresponding pixel inside the other image") with
    the forward flow of the same direction, and with the pixel-centre convention of the geometry core.
  - SSIM is the usual 3x3-window SSIM with c1 = 0.01^2, c2 = 0.03^2 (GeoNet's, which EFC follows for beta), computed
    on the interior (H-2) x (W-2) pixels; L_pm averages G over those pixels. |.|_1 is the mean over channels.
  - O_seg compares the arg-max classes; pixels whose correspondence leaves the image count as disagreeing (there is
    nothing to compare with). Coarser levels use O_seg area-averaged to their size.
  - O_est enters the weights of L_pm and L_cons (and O_error) through stop_gradient, so the occlusion heads learn
    from L_occ alone: letting those terms push O_est (the paper's remark that "the network tends to predict more
    occlusion" suggests it does), with lambda_cons = 10, can drive O_est to 1.
  - ||.||_2 is sqrt(sum of squares + 1e-8), so its gradient is finite at 0.
  - Features are warped with border padding (the nearest edge feature outside the image); images with zero padding,
    so a reconstruction from outside the image costs photometric error unless O_est masks it.
"""

import dataclasses

import tensorflow as tf

from consistency import flow_net as flow_net_lib
from depth_motion import geometry
from depth_motion import photometric

TERMS = ("segmentation", "consistency", "occlusion", "smoothness", "photometric")
DEFAULT_WEIGHTS = {"segmentation": 1.0, "consistency": 10.0, "occlusion": 0.4, "smoothness": 0.5,
                   "photometric": 1.0}

# GeoNet's SSIM constants (c1 = 0.01^2, c2 = 0.03^2 for images in [0, 1]).
SSIM_C1 = 1e-4
SSIM_C2 = 9e-4
NORM_EPSILON = 1e-8


@dataclasses.dataclass(frozen=True)
class EfcLossConfig:
  """Settings of `unsupervised_losses` (weights are applied separately, by `weighted`).

  Attributes:
    alpha: weight of the -alpha exp(-O_est) penalty in L_occ (0.2 in the paper).
    beta: SSIM share of the photometric error G (0.85).
    loss_levels: levels of the photometric, smoothness and occlusion terms (0 = full resolution).
    consistency_levels: encoder levels of the feature consistency term.
    occlusion_mask: weigh L_pm by (1 + O_error - O_est) and L_cons by (1 - O_est); False: weights 1 + O_error and 1.
    error_mask: use O_error (needs the segmentation probabilities); False: O_error = 0.
  """
  alpha: float = 0.2
  beta: float = 0.85
  loss_levels: tuple = (0, 2, 3, 4, 5)
  consistency_levels: tuple = (2, 3, 4)
  occlusion_mask: bool = True
  error_mask: bool = True


def loss_weights(overrides=None):
  """DEFAULT_WEIGHTS updated by `overrides` (dict term -> weight); an unknown term is an error naming it."""
  overrides = dict(overrides or {})
  unknown = sorted(set(overrides) - set(DEFAULT_WEIGHTS))
  if unknown:
    raise ValueError(f"Unknown EFC loss terms {unknown}. Known terms: {list(TERMS)}")
  weights = dict(DEFAULT_WEIGHTS)
  weights.update({name: float(value) for name, value in overrides.items()})
  return weights


def weighted(terms, weights):
  """{term: weight * value} for the terms whose weight is not 0 (the one place where the weights are applied)."""
  unknown = sorted(set(terms) - set(weights))
  if unknown:
    raise ValueError(f"No weight for EFC loss terms {unknown}. Weights: {sorted(weights)}")
  return {name: weights[name] * tf.cast(value, tf.float32) for name, value in terms.items() if weights[name] != 0.0}


# ----------------------------------------------------------------------------------------------------------------
# Masks.

def occlusion_target(flow):
  """EFC's occlusion target: [B, H, W] float32, 1 where x + flow(x) falls outside the image, else 0.

  Args:
    flow: [B, H, W, 2] flow of the frame (pixels).
  """
  # No gradient: a comparison of the flow with the image bounds (the target is not meant to move the flow).
  return tf.cast(geometry.leaves_image(tf.stop_gradient(flow)), tf.float32)


def segmentation_disagreement(probabilities, target_probabilities, flow):
  """O_seg: [B, H, W] float32, 1 where the class of a pixel differs from the class found at x + flow(x).

  Args:
    probabilities: [B, H, W, C] class probabilities of the source frame.
    target_probabilities: [B, H, W, C] of the other frame.
    flow: [B, H, W, 2] flow source -> other frame (pixels).

  Returns:
    float32 mask (no gradient: a comparison of arg-max classes); pixels whose correspondence leaves the image are 1.
  """
  flow = tf.stop_gradient(tf.cast(flow, tf.float32))
  warped = geometry.warp_with_flow(tf.stop_gradient(tf.cast(target_probabilities, tf.float32)), flow)
  disagree = tf.not_equal(tf.argmax(probabilities, axis=-1), tf.argmax(warped, axis=-1))
  return tf.cast(disagree | geometry.leaves_image(flow), tf.float32)


def error_mask(disagreement, occlusion):
  """O_error = max(O_seg - O_est, 0): [B, H, W] from two [B, H, W] masks."""
  return tf.nn.relu(tf.cast(disagreement, tf.float32) - tf.cast(occlusion, tf.float32))


# ----------------------------------------------------------------------------------------------------------------
# Terms (one scale; a batch of directed pairs).

def occlusion_loss(logits, target, alpha=0.2):
  """L_occ = mean[-log p(O_est = O^) - alpha exp(-O_est)], O_est = sigmoid(logits).

  Args:
    logits: [B, H, W] occlusion logits.
    target: [B, H, W] target in {0, 1}.
    alpha: penalty on predicted occlusion.

  Returns:
    float32 scalar (the penalty makes it as low as -alpha).
  """
  logits = tf.cast(logits, tf.float32)
  cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(target, tf.float32), logits=logits)
  return tf.reduce_mean(cross_entropy - alpha * tf.exp(-tf.sigmoid(logits)))


def photometric_error(image, reconstruction, beta=0.85):
  """G = beta (1 - SSIM) / 2 + (1 - beta) |I - I~|_1 on the interior pixels: [B, H-2, W-2].

  Args:
    image, reconstruction: [B, H, W, C] (H, W >= 3).
    beta: SSIM share.
  """
  image = tf.cast(image, tf.float32)
  reconstruction = tf.cast(reconstruction, tf.float32)
  if image.shape[1] is not None and image.shape[2] is not None and min(image.shape[1], image.shape[2]) < 3:
    raise ValueError(f"The photometric error needs images of at least 3x3 (3x3 SSIM windows). Received: image of "
                     f"shape {image.shape}; drop that level from the loss levels.")
  uniform = tf.ones_like(image[..., 0])
  dissimilarity, _ = photometric.weighted_ssim(image, reconstruction, uniform, c1=SSIM_C1, c2=SSIM_C2)
  l1 = tf.reduce_mean(tf.abs(image - reconstruction), axis=-1)[:, 1:-1, 1:-1]
  return beta * tf.reduce_mean(dissimilarity, axis=-1) + (1.0 - beta) * l1


def photometric_loss(image, reconstruction, weight, beta=0.85):
  """mean over interior pixels of G(I, I~) * weight.

  Args:
    image, reconstruction: [B, H, W, C].
    weight: [B, H, W] per-pixel weight, e.g. 1 + O_error - O_est.
    beta: SSIM share of G.

  Returns:
    float32 scalar.
  """
  weight = tf.cast(weight, tf.float32)[:, 1:-1, 1:-1]
  return tf.reduce_mean(photometric_error(image, reconstruction, beta) * weight)


def smoothness_loss(flow, image):
  """Edge-aware first-order smoothness: mean |d_x F| exp(-|d_x I|) + mean |d_y F| exp(-|d_y I|).

  Forward differences; |d I| is the mean over the image channels, |d F| over the two flow components.

  Args:
    flow: [B, H, W, 2].
    image: [B, H, W, C] the same frame, at the flow's resolution.

  Returns:
    float32 scalar (0 for a constant flow).
  """
  flow = tf.cast(flow, tf.float32)
  image = tf.cast(image, tf.float32)

  def dx(z):
    return z[:, :, 1:, :] - z[:, :, :-1, :]

  def dy(z):
    return z[:, 1:, :, :] - z[:, :-1, :, :]

  weight_x = tf.exp(-tf.reduce_mean(tf.abs(dx(image)), axis=-1, keepdims=True))
  weight_y = tf.exp(-tf.reduce_mean(tf.abs(dy(image)), axis=-1, keepdims=True))
  return tf.reduce_mean(tf.abs(dx(flow)) * weight_x) + tf.reduce_mean(tf.abs(dy(flow)) * weight_y)


def feature_consistency_loss(features, target_features, flow, weight):
  """L_cons = mean[weight ||Warp(S_j, F) - S_i||_2] at one level.

  Args:
    features: [B, h, w, C] S_i, the source frame's encoder features.
    target_features: [B, h, w, C] S_j.
    flow: [B, h, w, 2] source -> other frame, in pixels of this level.
    weight: [B, h, w] per-pixel weight, e.g. 1 - O_est.

  Returns:
    float32 scalar. Both feature maps and the flow receive gradients.
  """
  features = tf.cast(features, tf.float32)
  # "border": outside the image the nearest edge features are compared, not zeros (ReLU features are often near 0,
  # so zero padding would reward flow that leaves the image).
  warped = geometry.warp_with_flow(tf.cast(target_features, tf.float32), tf.cast(flow, tf.float32), boundary="border")
  distance = tf.sqrt(tf.reduce_sum(tf.square(warped - features), axis=-1) + NORM_EPSILON)
  return tf.reduce_mean(distance * tf.cast(weight, tf.float32))


# ----------------------------------------------------------------------------------------------------------------
# Multi-scale, both directions.

def _resize_images(images, size):
  """Area downsampling of [B, H, W, C] to `size`: an average pool when H and W are static multiples of it (the same
  values, and XLA has no ResizeArea kernel), else tf.image.resize's area method."""
  images = tf.cast(images, tf.float32)
  height, width = images.shape[1], images.shape[2]
  static_size = tf.get_static_value(size)
  if height and width and static_size is not None:
    factor_y, factor_x = height // int(static_size[0]), width // int(static_size[1])
    if factor_y * int(static_size[0]) == height and factor_x * int(static_size[1]) == width:
      return tf.nn.avg_pool2d(images, [factor_y, factor_x], [factor_y, factor_x], "VALID")
  return tf.image.resize(images, size, method="area")


def _scale_inputs(flows, occlusion_logits, image_size, level):
  """Flow [B, h, w, 2] (pixels of `level`) and occlusion logits [B, h, w] (or None) at a loss level."""
  finest = min(flows)
  if level in flows:
    flow = flows[level]
    logits = None if occlusion_logits is None else occlusion_logits[level]
  elif level < finest:
    size = image_size if level == 0 else (image_size + 2**level - 1) // 2**level  # the encoder's ceil rule
    flow = flow_net_lib.resize_flow(flows[finest], size)
    logits = None if occlusion_logits is None else tf.image.resize(occlusion_logits[finest], size, method="bilinear")
  else:
    raise ValueError(f"Loss level {level} is coarser than the flow levels {sorted(flows)}.")
  if logits is not None:
    logits = tf.cast(logits, tf.float32)[..., 0]
  return tf.cast(flow, tf.float32), logits


def unsupervised_losses(images, target_images, flows, occlusion_logits=None, features=None, target_features=None,
                        probabilities=None, target_probabilities=None, config=EfcLossConfig()):
  """EFC's unsupervised terms (unweighted) for a batch of directed pairs, over several scales.

  Args:
    images: [B, H, W, 3] source frames I_i in [0, 1].
    target_images: [B, H, W, 3] the frames I_j the flow points into.
    flows: {level: [B, H_l, W_l, 2]} flow I_i -> I_j in pixels of each level (FlowNet's "flow").
    occlusion_logits: {level: [B, H_l, W_l, 1]} logits of O_est of I_i, or None: no occlusion estimation (no L_occ,
      and the masks use O_est = 0).
    features, target_features: {level: [B, h, w, C]} encoder features of I_i and I_j, or None: no L_cons.
    probabilities, target_probabilities: [B, H, W, K] class probabilities of I_i and I_j, or None: no O_error.
    config: `EfcLossConfig`.

  Returns:
    (terms, masks): terms {"photometric", "smoothness"[, "occlusion"][, "consistency"]} -> float32 scalars (each
    the mean over levels and the batch); masks at full resolution for summaries: "occlusion_target",
    "occlusion" (O_est; when estimated) and "segmentation_error" (O_error; when computed), each [B, H, W] float32.
  """
  flows = {int(level): value for level, value in flows.items()}
  if occlusion_logits is not None:
    occlusion_logits = {int(level): value for level, value in occlusion_logits.items()}
  if config.occlusion_mask and occlusion_logits is None:
    raise ValueError("occlusion_mask needs occlusion_logits (set occlusion_mask=False without occlusion estimation).")
  images = tf.cast(images, tf.float32)
  target_images = tf.cast(target_images, tf.float32)
  image_size = tf.shape(images)[1:3]

  def mask_of(occlusion):
    # O_est is learned from L_occ alone; as a weight it would otherwise be pushed towards 1 by the very terms it masks.
    return tf.stop_gradient(occlusion)

  disagreement = None
  masks = {}
  if config.error_mask and probabilities is not None:
    full_flow, _ = _scale_inputs(flows, None, image_size, 0)
    disagreement = segmentation_disagreement(probabilities, target_probabilities, full_flow)

  sums = {"photometric": [], "smoothness": [], "occlusion": []}
  for level in config.loss_levels:
    flow, logits = _scale_inputs(flows, occlusion_logits, image_size, level)
    size = flow.shape[1:3].as_list() if flow.shape[1:3].is_fully_defined() else tf.shape(flow)[1:3]  # static if known
    source = images if level == 0 else _resize_images(images, size)
    target = target_images if level == 0 else _resize_images(target_images, size)
    target_mask = occlusion_target(flow)
    occlusion = tf.zeros_like(target_mask) if logits is None else tf.sigmoid(logits)
    weight = tf.ones_like(target_mask)
    if config.occlusion_mask:
      weight -= mask_of(occlusion)
    if disagreement is not None:
      level_disagreement = disagreement if level == 0 else _resize_images(disagreement[..., None], size)[..., 0]
      occlusion_for_error = mask_of(occlusion) if config.occlusion_mask else tf.zeros_like(occlusion)
      level_error = error_mask(level_disagreement, occlusion_for_error)
      weight += level_error
    reconstruction = geometry.warp_with_flow(target, flow)
    sums["photometric"].append(photometric_loss(source, reconstruction, weight, config.beta))
    sums["smoothness"].append(smoothness_loss(flow, source))
    if logits is not None:
      sums["occlusion"].append(occlusion_loss(logits, target_mask, config.alpha))
    if level == 0:
      masks["occlusion_target"] = target_mask
      if logits is not None:
        masks["occlusion"] = occlusion
      if disagreement is not None:
        masks["segmentation_error"] = level_error

  if features is not None:
    features = {int(level): value for level, value in features.items()}
    target_features = {int(level): value for level, value in target_features.items()}
    sums["consistency"] = []
    for level in config.consistency_levels:
      flow, logits = _scale_inputs(flows, occlusion_logits, image_size, level)
      weight = 1.0 - mask_of(tf.sigmoid(logits)) if config.occlusion_mask else tf.ones_like(flow[..., 0])
      sums["consistency"].append(feature_consistency_loss(features[level], target_features[level], flow, weight))

  terms = {name: tf.add_n(values) / float(len(values)) for name, values in sums.items() if values}
  return terms, masks

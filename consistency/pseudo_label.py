"""Weak-to-strong pseudo-labelling on single images (FixMatch, Sohn et al. 2020; UniMatch, Yang et al. CVPR 2023), as
pure functions: the semi-supervised baseline that treats the unlabeled frames as independent images.

For unlabeled images, the segmenter's prediction on the weak view (the pipeline's geometry-aware augmentation: flip,
scale-and-crop, mild colour jitter) gives a per-pixel pseudo-label where its softmax confidence is at least the
threshold (0.95: FixMatch's and UniMatch's); a cross-entropy teaches it to two perturbed predictions of the same
pixels:
  strong view   the weak images after strong photometric perturbation (`strong_photometric`) and CutMix with the
                next image of the batch (`cutmix_boxes`, `cutmix`); the pseudo-labels and confidences are mixed with
                the same boxes, so every pixel keeps the label of the image it came from;
  feature view  the weak images' encoder features after channel dropout (p = 0.5), decoded (UniMatch's feature
                perturbation, `feature_dropout`).
The weak prediction gets no gradient (`confident_pseudo_labels` stops it). The loss is UniMatch V1's with one strong
view instead of two: 0.5 strong + 0.5 feature, each the sum of the cross-entropy over confident pixels divided by the
number of pixels (`masked_cross_entropy`).

Strong photometric perturbation (UniMatch's, drawn per image): colour jitter with probability 0.8 (brightness,
contrast and saturation factors uniform in [0.5, 1.5], hue shift uniform in [-0.25, 0.25] of the colour circle,
applied in that order, where torchvision draws a random order), greyscale with probability 0.2, Gaussian blur with
probability 0.5 (sigma uniform in [0.1, 2.0] pixels). CutMix (UniMatch's `obtain_cutmix_box`): with probability 0.5
per image, a box of area uniform in [0.02, 0.4] of the image and aspect ratio h / w uniform in [0.3, 1 / 0.3], placed
uniformly inside the image, is taken from the next image of the batch.

Randomness is stateless: every function takes a [2] int seed (the stage derives it from its seed and the step), so a
resumed run draws what an uninterrupted one would.
"""

import tensorflow as tf

THRESHOLD = 0.95
STRONG_WEIGHT = 0.5
FEATURE_WEIGHT = 0.5
FEATURE_DROPOUT = 0.5
JITTER_PROBABILITY = 0.8
JITTER_RANGE = 0.5  # brightness, contrast, saturation factors in [1 - r, 1 + r]
HUE_RANGE = 0.25
GREYSCALE_PROBABILITY = 0.2
BLUR_PROBABILITY = 0.5
BLUR_SIGMA = (0.1, 2.0)
CUTMIX_PROBABILITY = 0.5
CUTMIX_AREA = (0.02, 0.4)
CUTMIX_RATIO = (0.3, 1 / 0.3)
# ITU-R 601 luma, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def _luminance(images):
  return tf.reduce_sum(images * tf.constant(_LUMA), axis=-1, keepdims=True)


def _per_image(values):
  return values[:, tf.newaxis, tf.newaxis, tf.newaxis]


def gaussian_blur(images, sigma):
  """[B, H, W, C] images blurred by a Gaussian of per-image standard deviation `sigma` [B] (pixels, <= 2), with
  reflected borders (separable, 13 taps: 3 sigma of the largest sigma on each side)."""
  radius = int(3 * BLUR_SIGMA[1])
  taps = tf.range(-radius, radius + 1, dtype=tf.float32)
  weights = tf.exp(-tf.square(taps)[tf.newaxis] / (2.0 * tf.square(sigma)[:, tf.newaxis]))
  weights /= tf.reduce_sum(weights, axis=1, keepdims=True)  # [B, taps]
  for axis in (1, 2):
    size = tf.shape(images)[axis]
    padding = [[0, 0]] * 4
    padding[axis] = [radius, radius]
    padded = tf.pad(images, padding, mode="REFLECT")
    images = tf.add_n([_per_image(weights[:, k]) * tf.gather(padded, tf.range(k, k + size), axis=axis)
                       for k in range(2 * radius + 1)])
  return images


def strong_photometric(images, seed):
  """UniMatch's strong photometric perturbation (module docstring) of [B, H, W, 3] images in [0, 1]."""
  images = tf.convert_to_tensor(images, tf.float32)
  seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed, tf.int64), 9)
  batch = tf.shape(images)[:1]

  def uniform(i, low=0.0, high=1.0):
    return tf.random.stateless_uniform(batch, seeds[i], low, high)

  jitter = uniform(0) < JITTER_PROBABILITY

  def factor(i):
    return _per_image(tf.where(jitter, uniform(i, 1.0 - JITTER_RANGE, 1.0 + JITTER_RANGE), 1.0))

  x = tf.clip_by_value(images * factor(1), 0.0, 1.0)
  mean = tf.reduce_mean(_luminance(x), axis=[1, 2, 3], keepdims=True)
  x = tf.clip_by_value(mean + factor(2) * (x - mean), 0.0, 1.0)
  grey = _luminance(x)
  x = tf.clip_by_value(grey + factor(3) * (x - grey), 0.0, 1.0)
  hsv = tf.image.rgb_to_hsv(x)
  hue = tf.math.floormod(hsv[..., :1] + _per_image(tf.where(jitter, uniform(4, -HUE_RANGE, HUE_RANGE), 0.0)), 1.0)
  x = tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1))
  greyscale = _per_image(uniform(5) < GREYSCALE_PROBABILITY)
  x = tf.where(greyscale, tf.tile(_luminance(x), [1, 1, 1, 3]), x)
  blur = _per_image(uniform(6) < BLUR_PROBABILITY)
  x = tf.where(blur, gaussian_blur(x, uniform(7, *BLUR_SIGMA)), x)
  return tf.clip_by_value(x, 0.0, 1.0)


def cutmix_boxes(batch, height, width, seed, probability=CUTMIX_PROBABILITY):
  """[batch, height, width] bool (sizes may be tensors): per image, with `probability`, one box (module docstring),
  else nothing."""
  seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed, tf.int64), 5)

  def uniform(i, low=0.0, high=1.0):
    return tf.random.stateless_uniform([batch], seeds[i], low, high)

  height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  area = uniform(1, *CUTMIX_AREA) * height_f * width_f
  ratio = uniform(2, *CUTMIX_RATIO)
  box_width = tf.minimum(tf.floor(tf.sqrt(area / ratio)), width_f)
  box_height = tf.minimum(tf.floor(tf.sqrt(area * ratio)), height_f)
  left = tf.floor(uniform(3) * (width_f - box_width + 1.0))
  top = tf.floor(uniform(4) * (height_f - box_height + 1.0))
  rows = tf.range(height_f)[tf.newaxis, :, tf.newaxis]
  cols = tf.range(width_f)[tf.newaxis, tf.newaxis, :]
  inside = ((rows >= top[:, None, None]) & (rows < (top + box_height)[:, None, None]) &
            (cols >= left[:, None, None]) & (cols < (left + box_width)[:, None, None]))
  return inside & (uniform(0) < probability)[:, None, None]


def cutmix(values, boxes):
  """`values` [B, H, W, ...] with the pixels inside `boxes` [B, H, W] taken from the next image of the batch
  (image b from image b + 1, the last from the first)."""
  values = tf.convert_to_tensor(values)
  partner = tf.roll(values, shift=-1, axis=0)
  boxes = tf.reshape(boxes, tf.concat([tf.shape(boxes), tf.ones([values.shape.rank - 3], tf.int32)], axis=0))
  return tf.where(boxes, partner, values)


def confident_pseudo_labels(logits, threshold=THRESHOLD):
  """(labels [B, H, W] int32, confident [B, H, W] float32) of weak-view logits: the argmax and whether its softmax
  probability is at least `threshold`. No gradient flows back through either."""
  probabilities = tf.nn.softmax(tf.stop_gradient(tf.cast(logits, tf.float32)), axis=-1)
  labels = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
  return labels, tf.cast(tf.reduce_max(probabilities, axis=-1) >= threshold, tf.float32)


def masked_cross_entropy(logits, labels, mask):
  """Sum of the per-pixel cross-entropy over the pixels where `mask` is 1, divided by the number of pixels."""
  per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
  return tf.reduce_mean(per_pixel * mask)


def feature_dropout(features, seed, rate=FEATURE_DROPOUT):
  """{level: [B, h, w, C]} with whole channels of each image dropped with probability `rate` (kept ones scaled by
  1 / (1 - rate)): UniMatch's feature perturbation (nn.Dropout2d)."""
  seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed, tf.int64), len(features))
  result = {}
  for k, (level, value) in enumerate(sorted(features.items())):
    shape = tf.shape(value)
    result[level] = tf.nn.experimental.stateless_dropout(value, rate, seeds[k],
                                                         noise_shape=tf.stack([shape[0], 1, 1, shape[3]]))
  return result

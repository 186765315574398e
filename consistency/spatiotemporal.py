"""The 4D (spatio-temporal) consistency loss of Pasad et al. 2020, as pure functions.

For a directed pair (i, j), depth of frame j, the rigid motion from camera j to camera i and K give, for every pixel
of frame j, where it lands in frame i (`rigid_correspondence`). Resampling frame i's logits there gives a second
estimate of frame j's logits, L^_j; the loss compares it with the segmenter's own L_j where the point is inside frame
i and not hidden there (the mask):

  uniform      mean over masked pixels and classes of |L^_j - L_j|                     (W constant)
  label_prior  mean over masked pixels of |L^_j - L_j| at the predicted class argmax L_j (W one-hot of y^_j)
  edge_prior   mean over masked edge pixels and classes of |L^_j - L_j|                 (W = E(I_j), 1 on edges)
  cross_entropy  CE(L^_j, y^_j): the pseudo-label alternative of the paper's ablation

Each weighting is normalised by its own weight mass (the paper's "normalized weights"), so the mix
0.2 uniform + 0.4 label_prior + 0.4 edge_prior (the paper's) compares terms of the same scale.

The edge map E (the paper does not name its detector): Sobel gradient magnitude of the luminance, normalised by its
maximum per image, thresholded at EDGE_THRESHOLD, i.e. a binary map of the image's strongest intensity edges.
"""

import collections

import tensorflow as tf

from depth_motion import geometry

TERMS = ("uniform", "label_prior", "edge_prior", "cross_entropy")
DEFAULT_WEIGHTS = {"uniform": 0.2, "label_prior": 0.4, "edge_prior": 0.4, "cross_entropy": 0.0}
# A point of frame j counts as visible in frame i while its depth there is at most (1 + tolerance) x frame i's depth
# resampled at it: bilinear resampling blends depths across edges, and a strict test would drop surfaces that agree.
OCCLUSION_TOLERANCE = 0.05
EDGE_THRESHOLD = 0.2

Correspondence = collections.namedtuple("Correspondence", ["coords", "mask"])
Correspondence.__doc__ = """Where frame j's pixels land in frame i.

coords: [B, H, W, 2] (x, y) in frame i, for every pixel of frame j.
mask:   [B, H, W] float32, 1 where the point is inside frame i, in front of its camera and not occluded there.
"""


def rigid_correspondence(depth_j, depth_i, rotation, translation, intrinsics, tolerance=OCCLUSION_TOLERANCE):
  """The depth warp of frame j into frame i, with the occlusion test against frame i's depth.

  Args:
    depth_j: [B, H, W] depth of frame j (predicted, or ground truth with 0 = missing: such pixels are masked).
    depth_i: [B, H, W] depth of frame i (for the occlusion test; 0 = missing masks the pixels landing there).
    rotation: [B, 3] Euler angles or [B, 3, 3], the motion from camera j to camera i.
    translation: [B, 3], or a [B, H, W, 3] field on frame j's grid.
    intrinsics: [B, 3, 3].
    tolerance: relative depth tolerance of the visibility test.

  Returns:
    A `Correspondence`.
  """
  rotation = tf.convert_to_tensor(rotation, tf.float32)
  if rotation.shape.rank == 2:
    rotation = geometry.matrix_from_angles(rotation)
  warp = geometry.depth_warp(depth_j, rotation, translation, intrinsics)
  resampled = geometry.resample(tf.convert_to_tensor(depth_i, tf.float32)[..., tf.newaxis], warp.coords,
                                boundary="border")[..., 0]
  visible = geometry.closer_to_camera(warp, resampled, relative_tolerance=tolerance) & (resampled > 0)
  return Correspondence(coords=warp.coords, mask=tf.cast(visible, tf.float32))


def edge_map(images, threshold=EDGE_THRESHOLD):
  """[B, H, W] float32 binary edge map of [B, H, W, 3] images in [0, 1] (see the module docstring)."""
  images = tf.convert_to_tensor(images, tf.float32)
  luminance = tf.reduce_sum(images * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
  sobel = tf.image.sobel_edges(luminance)[..., 0, :]  # [B, H, W, 2] (dy, dx)
  magnitude = tf.norm(sobel, axis=-1)
  normalised = tf.math.divide_no_nan(magnitude, tf.reduce_max(magnitude, axis=[1, 2], keepdims=True))
  return tf.cast(normalised > threshold, tf.float32)


def _masked_mean(values, weights):
  return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(weights))


def consistency_terms(logits_i, logits_j, correspondence, image_j=None, terms=TERMS):
  """The unweighted consistency terms of one directed pair, on frame j's grid.

  Args:
    logits_i: [B, H, W, C] segmenter logits of frame i (resampled onto frame j's grid).
    logits_j: [B, H, W, C] segmenter logits of frame j.
    correspondence: `rigid_correspondence` of frame j into frame i.
    image_j: [B, H, W, 3] frame j, for the edge prior (needed when "edge_prior" is in `terms`).
    terms: which of TERMS to compute.

  Returns:
    {term: float32 scalar}; 0 where no pixel is valid.
  """
  logits_i = tf.cast(logits_i, tf.float32)
  logits_j = tf.cast(logits_j, tf.float32)
  warped = geometry.resample(logits_i, correspondence.coords, boundary="border")
  mask = correspondence.mask
  difference = tf.abs(warped - logits_j)
  predicted = tf.argmax(logits_j, axis=-1, output_type=tf.int32)
  num_classes = tf.cast(tf.shape(logits_j)[-1], tf.float32)
  result = {}
  for term in terms:
    if term == "uniform":
      result[term] = _masked_mean(tf.reduce_sum(difference, axis=-1), mask) / num_classes
    elif term == "label_prior":
      at_label = tf.reduce_sum(difference * tf.one_hot(predicted, tf.shape(logits_j)[-1]), axis=-1)
      result[term] = _masked_mean(at_label, mask)
    elif term == "edge_prior":
      if image_j is None:
        raise ValueError("consistency_terms needs image_j for the edge_prior term.")
      result[term] = _masked_mean(tf.reduce_sum(difference, axis=-1), mask * edge_map(image_j)) / num_classes
    elif term == "cross_entropy":
      per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.stop_gradient(predicted), logits=warped)
      result[term] = _masked_mean(per_pixel, mask)
    else:
      raise ValueError(f"Unknown consistency term {term!r}. Known terms: {TERMS}")
  return result


def weighted_consistency(terms, weights):
  """sum_term weights[term] * terms[term] (float32 scalar); terms missing from `weights` count 0."""
  return tf.add_n([tf.cast(weights.get(name, 0.0), tf.float32) * value for name, value in terms.items()] +
                  [tf.constant(0.0)])

"""Clip augmentation that keeps geometry right: colour jitter (one draw per clip), horizontal flip, scale-and-crop.

A clip is one example of the batch dictionary before batching:
  image      [T, H, W, 3] float32 in [0, 1]
  intrinsics [3, 3]
  label      [T, H, W] int32 (IGNORE_LABEL where unlabeled)      optional
  depth      [T, H, W] float32 metres, 0 = missing                 optional
  pose       [T, 4, 4] camera-to-world                             optional
Other keys pass through unchanged. Every frame of a clip gets the same transformation, so correspondences between
its frames stay those of a real camera: after a flip the clip shows the mirrored scene (K, depth and poses are
mirrored with it), after scale-and-crop K is rescaled and shifted.

Randomness is stateless: `augment_clip` takes a [2] int seed, so a pipeline is reproducible from its seed.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from depth_motion import geometry

_SPATIAL_NEAREST_KEYS = ("label", "depth")
# Mirrors the world x axis: pose' = S pose S for camera-to-world poses. (A NumPy constant: a TensorFlow op at import
# time would initialise the devices before the training command can split the CPU into replicas.)
_MIRROR = np.array([-1.0, 1.0, 1.0, 1.0], np.float32)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Augmentation settings (defaults: Depth from Videos in the Wild's colour jitter, flip and mild scale-and-crop).

  Attributes:
    color_probability: probability of each of brightness, contrast, saturation and hue jitter.
    brightness: maximum absolute brightness delta.
    contrast: (low, high) contrast factor range.
    saturation: (low, high) saturation factor range.
    hue: maximum absolute hue delta.
    flip_probability: probability of a horizontal flip.
    max_scale: scale-and-crop zooms by a factor uniform in [1, max_scale]; 1 disables it.
  """
  color_probability: float = 0.5
  brightness: float = 0.1
  contrast: tuple = (0.85, 1.15)
  saturation: tuple = (0.85, 1.15)
  hue: float = 0.1
  flip_probability: float = 0.5
  max_scale: float = 1.15

  def __post_init__(self):
    for name in ("color_probability", "flip_probability"):
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value}")
    if self.max_scale < 1.0:
      raise ValueError(f"max_scale must be >= 1. Received: max_scale={self.max_scale}")


def flip_clip(clip):
  """The horizontally mirrored clip: images, labels and depth flipped, K and poses mirrored to match."""
  out = dict(clip)
  width = tf.shape(clip["image"])[2]
  out["image"] = tf.reverse(clip["image"], axis=[2])
  for key in _SPATIAL_NEAREST_KEYS:
    if key in clip:
      out[key] = tf.reverse(clip[key], axis=[2])
  out["intrinsics"] = geometry.flip_intrinsics(clip["intrinsics"], width)
  if "pose" in clip:
    out["pose"] = clip["pose"] * _MIRROR[:, np.newaxis] * _MIRROR
  return out


def scale_and_crop_clip(clip, scale, offset):
  """Zooms the clip by `scale` (>= 1) and crops it back to its size at `offset` = (y, x) of the zoomed frames.

  Images resize bilinearly; labels and depth by nearest neighbour (depth values are unchanged by zooming).
  """
  out = dict(clip)
  shape = tf.shape(clip["image"])
  size = shape[1:3]
  zoomed = tf.cast(tf.math.round(tf.cast(size, tf.float32) * scale), tf.int32)
  zoomed = tf.maximum(zoomed, size)
  offset = tf.convert_to_tensor(offset, tf.int32)

  def zoom_crop(tensor, method):
    resized = tf.image.resize(tensor, zoomed, method=method)
    return tf.cast(resized[:, offset[0]:offset[0] + size[0], offset[1]:offset[1] + size[1]], tensor.dtype)

  out["image"] = zoom_crop(clip["image"], "bilinear")
  for key in _SPATIAL_NEAREST_KEYS:
    if key in clip:
      out[key] = zoom_crop(clip[key][..., tf.newaxis], "nearest")[..., 0]
  intrinsics = geometry.resize_intrinsics(clip["intrinsics"], size, zoomed)
  out["intrinsics"] = geometry.crop_intrinsics(intrinsics, offset[0], offset[1])
  return out


def jitter_color(image, seed, config):
  """Brightness, contrast, saturation and hue jitter with one random draw for all frames of [T, H, W, 3] `image`."""
  seeds = tf.random.experimental.stateless_split(seed, 5)
  apply = tf.random.stateless_uniform([4], seeds[0]) < config.color_probability

  def draw(i, low, high):
    return tf.random.stateless_uniform([], seeds[i], low, high)

  image = tf.cond(apply[0], lambda: image + draw(1, -config.brightness, config.brightness), lambda: image)
  image = tf.cond(apply[1], lambda: tf.image.adjust_contrast(image, draw(2, *config.contrast)), lambda: image)
  image = tf.cond(apply[2], lambda: tf.image.adjust_saturation(tf.clip_by_value(image, 0.0, 1.0),
                                                               draw(3, *config.saturation)), lambda: image)
  image = tf.cond(apply[3], lambda: tf.image.adjust_hue(tf.clip_by_value(image, 0.0, 1.0), draw(4, -config.hue,
                                                                                                config.hue)),
                  lambda: image)
  return tf.clip_by_value(image, 0.0, 1.0)


def augment_clip(clip, seed, config=AugmentConfig()):
  """Random colour jitter, flip and scale-and-crop of a clip (see the module docstring), from a [2] int seed."""
  seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed, tf.int64), 5)
  clip = dict(clip)
  clip["image"] = jitter_color(clip["image"], seeds[0], config)
  flip = tf.random.stateless_uniform([], seeds[1]) < config.flip_probability
  clip = tf.cond(flip, lambda: flip_clip(clip), lambda: clip)
  if config.max_scale > 1.0:
    scale = tf.random.stateless_uniform([], seeds[2], 1.0, config.max_scale)
    size = tf.shape(clip["image"])[1:3]
    zoomed = tf.cast(tf.math.round(tf.cast(size, tf.float32) * scale), tf.int32)
    room = tf.maximum(zoomed - size, 0) + 1
    offset = tf.stack([tf.random.stateless_uniform([], seeds[3], 0, room[0], tf.int32),
                       tf.random.stateless_uniform([], seeds[4], 0, room[1], tf.int32)])
    clip = scale_and_crop_clip(clip, scale, offset)
  return clip

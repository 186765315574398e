"""One learned camera per video: the later code's intrinsics table, for training sets shot with several cameras.

The motion network's intrinsics head predicts K per frame pair; one K for a whole dataset fails when its videos come
from different cameras. This table learns four numbers per video instead, indexed by a video id, initialised to
[1, 1, 0.5, 0.5] as in the later code:
    fx = a (H + W) / 2,  fy = b (H + W) / 2,  cx = c W - 0.5,  cy = d H - 0.5
(the -0.5: pixel centres at integer coordinates, see geometry.intrinsics; c = d = 0.5 is the image centre).
"""

import keras
import tensorflow as tf

from depth_motion import geometry

INITIAL_PARAMS = (1.0, 1.0, 0.5, 0.5)


@keras.saving.register_keras_serializable(package="depth_motion")
class IntrinsicsTable(keras.Model):
  """K [B, 3, 3] for video ids [B] (int) at a fixed image size.

  Args:
    num_videos: number of videos (ids 0 .. num_videos - 1).
    image_size: (height, width) of the images K refers to.
  """

  def __init__(self, num_videos, image_size, **kwargs):
    super().__init__(**kwargs)
    if num_videos < 1:
      raise ValueError(f"IntrinsicsTable needs num_videos >= 1. Received: {num_videos}")
    self.num_videos = int(num_videos)
    self.image_size = tuple(int(v) for v in image_size)
    self.params = self.add_weight(shape=(self.num_videos, 4), name="params",
                                  initializer=lambda shape, dtype=None: tf.tile(
                                      tf.constant([INITIAL_PARAMS], tf.float32), [shape[0], 1]))

  def call(self, video_ids):
    height, width = (float(v) for v in self.image_size)
    params = tf.gather(tf.cast(self.params, tf.float32), tf.cast(video_ids, tf.int32))
    focal_scale = (height + width) / 2.0
    return geometry.make_intrinsics(params[:, 0] * focal_scale, params[:, 1] * focal_scale,
                                    params[:, 2] * width - 0.5, params[:, 3] * height - 0.5)

  def get_config(self):
    config = super().get_config()
    config.update({"num_videos": self.num_videos, "image_size": list(self.image_size)})
    return config

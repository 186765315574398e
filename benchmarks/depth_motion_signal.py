"""Does the photometric loss point the motion network the right way from where it starts (no motion)?

    python -m benchmarks.depth_motion_signal [--gaps=1,2,3] [--pairs=32] [--blur=0]

On synthetic training pairs (20 scenes x 100 frames, 64x96) with the true depth and K, the RGB + SSIM loss of the
directed pair (0, 1) ("later" weights, visibility tolerance 5 %) is differentiated with respect to the rotation
(Euler angles) and the translation at zero motion, where a freshly initialised motion network starts. For each gap it
prints the median cosine between the negative gradient and the true rotation / translation, and the fraction of
pairs where that cosine is positive: a descent step moves towards the truth only where it is. `--blur=N` smooths
both images with an N x N box filter first (what a coarser scale of a multi-scale loss would see).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from consistency import config as config_lib  # noqa: E402
from consistency.stages import video  # noqa: E402
from datasets import clips  # noqa: E402
from datasets import ground_truth  # noqa: E402
from datasets import sources  # noqa: E402
from depth_motion import geometry  # noqa: E402
from depth_motion import losses as losses_lib  # noqa: E402

HEIGHT, WIDTH = 64, 96


def _cosine(a, b):
  return (tf.reduce_sum(a * b, -1) / (tf.norm(a, axis=-1) * tf.norm(b, axis=-1) + 1e-12)).numpy()


def gradient_cosines(batch, blur=0):
  """(rotation cosines [B], translation cosines [B]) of the negative loss gradient at zero motion vs the truth."""
  images = tf.cast(batch["image"], tf.float32)
  if blur:
    flat = tf.reshape(images, [-1, HEIGHT, WIDTH, 3])
    images = tf.reshape(tf.nn.avg_pool2d(flat, blur, 1, "SAME"), tf.shape(images))
  depth = tf.cast(batch["depth"], tf.float32)
  intrinsics = tf.cast(batch["intrinsics"], tf.float32)
  rotation_matrix, true_translation = ground_truth.pair_motions(batch["pose"], [(0, 1)])[(0, 1)]
  true_rotation = geometry.angles_from_matrix(rotation_matrix)
  rotation = tf.Variable(tf.zeros_like(true_rotation))
  translation = tf.Variable(tf.zeros_like(true_translation))
  weights = losses_lib.loss_weights(preset="later")
  with tf.GradientTape() as tape:
    values, _ = losses_lib.directed_pair_losses(images[:, 1], depth[:, 1], rotation, translation, intrinsics,
                                                images[:, 0], depth[:, 0], occlusion_tolerance=0.05)
    loss = weights["rgb"] * values["rgb"] + weights["ssim"] * values["ssim"]
  rotation_gradient, translation_gradient = tape.gradient(loss, [rotation, translation])
  return _cosine(-rotation_gradient, true_rotation), _cosine(-translation_gradient, true_translation)


def main(argv):
  del argv
  flag_values = flags.FLAGS
  config = config_lib.TrainConfig(model_dir="/tmp/unused", stages=("depth_motion",), dataset="synthetic",
                                  synthetic_scenes=20, synthetic_frames=100, height=HEIGHT, width=WIDTH)
  scenes = sources.load_scenes(video.source_spec(config), "train")
  for gap in flag_values.gaps:
    clip_config = clips.ClipConfig(height=HEIGHT, width=WIDTH, clip_length=2, min_gap=int(gap), max_gap=int(gap),
                                   batch_size=flag_values.pairs, augment=None, include_ground_truth=True, seed=0)
    batch = next(iter(clips.ClipSource(scenes, clip_config).dataset(training=True)))
    rotation, translation = gradient_cosines(batch, flag_values.blur)
    print(f"gap {gap}, blur {flag_values.blur}: rotation cosine median {np.median(rotation):+.2f} (positive for "
          f"{np.mean(rotation > 0):.0%} of {len(rotation)} pairs); translation cosine median "
          f"{np.median(translation):+.2f} (positive for {np.mean(translation > 0):.0%})", flush=True)


if __name__ == "__main__":
  flags.DEFINE_list("gaps", ["1", "2", "3"], "Frame gaps to measure.")
  flags.DEFINE_integer("pairs", 32, "Training pairs per gap (one batch, shuffled with seed 0).")
  flags.DEFINE_integer("blur", 0, "Box filter size applied to both images first (0: none).")
  app.run(main)

"""Does the depth_motion loss lead a depth map to the truth when the motion and K are exact?

    python -m diagnostics.depth_loss_landscape [--motion=dolly] [--min_gap=2] [--max_gap=4] [--pairs=8]
        [--smoothness=0.002,0.02,0.1,0.5] [--coarse=4] [--steps=600] [--learning_rate=0.02]
        [--occlusion_tolerance=0.05]

On one batch of --pairs synthetic training pairs (20 scenes x 100 frames, 64x96, --motion camera) with the true motion
and K, the stage's own loss (`losses.clip_losses`, "later" weights, visibility tolerance --occlusion_tolerance, blurs
1 and 5):
1. the loss of fixed depth maps: the truth, a constant map at the true mean, the truth x 2 (wrong scale for the
   metric motion) and the truth with 20 % log-normal noise per pixel;
2. fits of a free depth (log-depth variables, Adam, --steps steps from the constant map, no network): one variable per
   pixel for each --smoothness weight of the depth smoothness term, and one per cell of a --coarse x coarser grid
   (bilinearly upsampled) at the preset's weight. It prints the loss and the median-scaled AbsRel reached, next to
   the constant map's: whether descent on this loss can reach the truth at all, which a depth network can do no
   better than.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from consistency.harness import config as config_lib  # noqa: E402
from consistency.stages import video  # noqa: E402
from datasets import clips  # noqa: E402
from datasets import ground_truth  # noqa: E402
from datasets import sources  # noqa: E402
from depth_motion import losses as losses_lib  # noqa: E402
from depth_motion import metrics  # noqa: E402

HEIGHT, WIDTH = 64, 96
BLURS = (1, 5)


def _batch(motion, min_gap, max_gap, pairs):
  config = config_lib.TrainConfig(model_dir="/tmp/unused", stages=("depth_motion",), dataset="synthetic",
                                  synthetic_scenes=20, synthetic_frames=100, height=HEIGHT, width=WIDTH,
                                  synthetic_motion=motion)
  clip_config = clips.ClipConfig(height=HEIGHT, width=WIDTH, clip_length=2, min_gap=min_gap, max_gap=max_gap,
                                 batch_size=pairs, augment=None, include_ground_truth=True, seed=0)
  return next(iter(clips.clips(sources.load_scenes(video.source_spec(config), "train"), clip_config, training=True)))


def _loss_fn(batch, smoothness, occlusion_tolerance):
  """depths [B, 2, H, W] -> (total, unweighted terms, masks) of the clip with the true motion and K."""
  weights = losses_lib.loss_weights({"depth_smoothness": smoothness}, preset="later")
  motions = {pair: {"rotation": rotation, "translation": translation}
             for pair, (rotation, translation) in ground_truth.pair_motions(batch["pose"], [(0, 1), (1, 0)]).items()}
  intrinsics = tf.cast(batch["intrinsics"], tf.float32)

  def loss(depths):
    terms, masks = losses_lib.clip_losses(batch["image"], depths, motions, intrinsics=intrinsics,
                                          occlusion_tolerance=occlusion_tolerance, photometric_blurs=BLURS)
    total, _ = losses_lib.weighted_total({n: v for n, v in terms.items() if weights[n] != 0}, weights)
    return total, terms, masks
  return loss


def _abs_rel(depths, truth):
  return float(tf.reduce_mean(metrics.depth_errors(depths[:, 0], truth[:, 0], median_scaling=True)["abs_rel"]))


def _fit(loss, truth, coarse, steps, learning_rate):
  """(loss, AbsRel) after fitting free log-depths from the constant map; `coarse` > 1: one variable per cell."""
  batch = truth.shape[0]
  mean = tf.reduce_mean(truth, axis=[2, 3], keepdims=True)
  shape = [batch, 2, HEIGHT // coarse, WIDTH // coarse]
  log_depth = tf.Variable(tf.math.log(tf.ones(shape) * mean))

  def depths():
    if coarse == 1:
      return tf.exp(log_depth)
    grid = tf.reshape(log_depth, [2 * batch, shape[2], shape[3], 1])
    return tf.exp(tf.reshape(tf.image.resize(grid, [HEIGHT, WIDTH], "bilinear"), [batch, 2, HEIGHT, WIDTH]))

  optimizer = tf.keras.optimizers.Adam(learning_rate)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      total = loss(depths())[0]
    optimizer.apply_gradients([(tape.gradient(total, log_depth), log_depth)])
    return total

  for _ in range(steps):
    total = step()
  return float(total), _abs_rel(depths(), truth)


def main(argv):
  del argv
  values = flags.FLAGS
  batch = _batch(values.motion, values.min_gap, values.max_gap, values.pairs)
  truth = tf.cast(batch["depth"], tf.float32)
  mean = tf.reduce_mean(truth, axis=[2, 3], keepdims=True)
  tolerance = values.occlusion_tolerance
  loss = _loss_fn(batch, losses_lib.WEIGHT_PRESETS["later"]["depth_smoothness"], tolerance)
  constant_abs_rel = _abs_rel(tf.ones_like(truth) * mean, truth)
  print(f"{values.pairs} {values.motion} pairs, gap {values.min_gap}-{values.max_gap}, true motion and K; "
        f"constant map AbsRel {constant_abs_rel:.3f}")
  noise = tf.exp(tf.random.stateless_normal(tf.shape(truth), [0, 1], stddev=0.2))
  for name, depths in (("true", truth), ("constant", tf.ones_like(truth) * mean), ("true x 2", 2.0 * truth),
                       ("true x 20 % noise", truth * noise)):
    total, terms, masks = loss(depths)
    print(f"  fixed {name:18s} loss {float(total):.3f} rgb {float(terms['rgb']):.4f} ssim {float(terms['ssim']):.4f} "
          f"visible {float(tf.reduce_mean(masks[(0, 1)]['visible'])):.2f}")
  for smoothness in values.smoothness:
    total, abs_rel = _fit(_loss_fn(batch, float(smoothness), tolerance), truth, 1, values.steps, values.learning_rate)
    print(f"  fit per pixel, smoothness {float(smoothness):g}: loss {total:.3f}, AbsRel {abs_rel:.3f}")
  total, abs_rel = _fit(loss, truth, values.coarse, values.steps, values.learning_rate)
  print(f"  fit on a {values.coarse}x coarser grid, preset smoothness: loss {total:.3f}, AbsRel {abs_rel:.3f}")


if __name__ == "__main__":
  flags.DEFINE_enum("motion", "dolly", ["handheld", "dolly"], "Camera motion of the synthetic video.")
  flags.DEFINE_integer("min_gap", 2, "Smallest frame gap of the pairs.")
  flags.DEFINE_integer("max_gap", 4, "Largest frame gap of the pairs.")
  flags.DEFINE_integer("pairs", 8, "Pairs in the batch.")
  flags.DEFINE_float("occlusion_tolerance", 0.05, "Relative depth tolerance of the visibility test (0.99: almost no "
                     "occlusion masking).")
  flags.DEFINE_list("smoothness", ["0.002", "0.02", "0.1", "0.5"], "Depth smoothness weights of the per-pixel fits.")
  flags.DEFINE_integer("coarse", 4, "Downsampling factor of the coarse fit's grid.")
  flags.DEFINE_integer("steps", 600, "Adam steps of each fit.")
  flags.DEFINE_float("learning_rate", 0.02, "Adam learning rate of the fits (on log-depth).")
  app.run(main)

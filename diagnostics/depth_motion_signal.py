"""Does the photometric loss lead to the true motion, from where a motion network starts (no motion)?

    python -m diagnostics.depth_motion_signal [--gaps=1,2,3] [--pairs=32] [--blurs=1] [--fit_steps=0]
        [--match_radius=0] [--motion=handheld|dolly] [--translation_prior=0.003]

On synthetic training pairs (20 scenes x 100 frames, 64x96, --motion camera) with the true depth and K, the RGB + SSIM loss of the
directed pair (0, 1) ("later" weights, visibility tolerance 5 %, `--blurs` = the loss's `photometric_blurs`, e.g.
`--blurs=1,5`) is differentiated with respect to the rotation (Euler angles) and the translation at zero motion, where
a freshly initialised motion network starts. For each gap it prints the median cosine between the negative gradient
and the true rotation / translation, and the fraction of pairs where that cosine is positive: a descent step moves
towards the truth only where it is. With `--fit_steps=N` it then fits free motion variables, one per pair and
direction (no network), to the RGB + SSIM loss of both directed pairs with Adam (`--fit_learning_rate`) and prints
the rotation error and translation direction error every 50 steps: whether descent on this loss reaches the truth at
all, which a motion network can do no better than. With `--match_radius=R` it also solves for the pose the way
`MotionNet(pose_solver="least_squares")` does (a patch match within R pixels, `geometry.motion_from_flow`) with the
true depth and with a constant depth (where a depth network starts), and prints the match's error against the true
flow and the pose's errors: what that solver can reach from these frames; once with the exhaustive match
(`patch_match.ncc_flow`) and once with the coarse-to-fine one the solver uses (`patch_match.coarse_to_fine_flow`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from consistency.harness import config as config_lib  # noqa: E402
from consistency.stages import video  # noqa: E402
from datasets import clips  # noqa: E402
from datasets import ground_truth  # noqa: E402
from datasets import sources  # noqa: E402
from depth_motion import geometry  # noqa: E402
from depth_motion import losses as losses_lib  # noqa: E402
from depth_motion import metrics  # noqa: E402
from depth_motion import motion_net  # noqa: E402
from depth_motion import patch_match  # noqa: E402

HEIGHT, WIDTH = 64, 96


def _cosine(a, b):
  return (tf.reduce_sum(a * b, -1) / (tf.norm(a, axis=-1) * tf.norm(b, axis=-1) + 1e-12)).numpy()


def _pair_losses(batch, motions, blurs):
  images = tf.cast(batch["image"], tf.float32)
  weights = losses_lib.loss_weights(preset="later")
  values, _ = losses_lib.clip_losses(images, tf.cast(batch["depth"], tf.float32), motions,
                                     intrinsics=tf.cast(batch["intrinsics"], tf.float32), occlusion_tolerance=0.05,
                                     photometric_blurs=blurs)
  return weights["rgb"] * values["rgb"] + weights["ssim"] * values["ssim"]


def gradient_cosines(batch, blurs=(1,)):
  """(rotation cosines [B], translation cosines [B]) of the negative loss gradient at zero motion vs the truth."""
  rotation_matrix, true_translation = ground_truth.pair_motions(batch["pose"], [(0, 1)])[(0, 1)]
  true_rotation = geometry.angles_from_matrix(rotation_matrix)
  rotation = tf.Variable(tf.zeros_like(true_rotation))
  translation = tf.Variable(tf.zeros_like(true_translation))
  with tf.GradientTape() as tape:
    # The loss of pair (1, 0) does not depend on these variables (no cycle terms): only (0, 1) is differentiated.
    zero = {"rotation": tf.zeros_like(true_rotation), "translation": tf.zeros_like(true_translation)}
    loss = _pair_losses(batch, {(0, 1): {"rotation": rotation, "translation": translation}, (1, 0): zero}, blurs)
  rotation_gradient, translation_gradient = tape.gradient(loss, [rotation, translation])
  return _cosine(-rotation_gradient, true_rotation), _cosine(-translation_gradient, true_translation)


def fit_free_motion(batch, blurs, steps, learning_rate, report):
  """Adam on per-pair motion variables from zero; calls report(step, rotation errors [B], translation angles [B])."""
  truth = ground_truth.pair_motions(batch["pose"], [(0, 1), (1, 0)])
  size = batch["image"].shape[0]
  variables = {pair: (tf.Variable(tf.zeros([size, 3])), tf.Variable(tf.zeros([size, 3]))) for pair in truth}
  flat = [variable for pair in variables.values() for variable in pair]
  optimizer = keras.optimizers.Adam(learning_rate)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      motions = {pair: {"rotation": rotation, "translation": translation}
                 for pair, (rotation, translation) in variables.items()}
      loss = _pair_losses(batch, motions, blurs)
    optimizer.apply_gradients(zip(tape.gradient(loss, flat), flat))

  for index in range(steps + 1):
    if index % 50 == 0:
      errors = metrics.motion_errors(*variables[(0, 1)], *truth[(0, 1)])
      report(index, errors["rotation_error"].numpy(), errors["translation_angle"].numpy(),
             errors["true_rotation"].numpy())
    if index < steps:
      step()


def least_squares_pose(batch, radius, matcher, translation_prior):
  """{depth kind: (rotation errors, translation angles, true rotations)} and the match's error [B, H, W] (pixels)."""
  images = tf.cast(batch["image"], tf.float32)
  depth = tf.cast(batch["depth"], tf.float32)[:, 1]
  intrinsics = tf.cast(batch["intrinsics"], tf.float32)
  rotation, translation = ground_truth.pair_motions(batch["pose"], [(0, 1)])[(0, 1)]
  warp = geometry.depth_warp(depth, rotation, translation, intrinsics)
  flow, confidence = matcher(images[:, 1], images[:, 0], radius=radius)
  match_error = tf.norm(flow - (warp.coords - geometry.pixel_grid(HEIGHT, WIDTH)), axis=-1).numpy()
  results = {}
  for kind, given in (("true", depth), ("constant", tf.ones_like(depth))):
    found_rotation, found_translation = geometry.motion_from_flow(
        flow, given, intrinsics, confidence, iterations=motion_net.POSE_ITERATIONS,
        robust_scale=motion_net.POSE_ROBUST_SCALE, translation_prior=translation_prior)
    errors = metrics.motion_errors(geometry.angles_from_matrix(found_rotation), found_translation, rotation,
                                   translation)
    results[kind] = tuple(errors[key].numpy() for key in ("rotation_error", "translation_angle", "true_rotation"))
  return results, match_error


def direct_pose(batch, translation_prior):
  """{depth kind: (rotation errors, translation angles, true rotations)} of direct photometric alignment."""
  images = tf.cast(batch["image"], tf.float32)
  depth = tf.cast(batch["depth"], tf.float32)[:, 1]
  intrinsics = tf.cast(batch["intrinsics"], tf.float32)
  rotation, translation = ground_truth.pair_motions(batch["pose"], [(0, 1)])[(0, 1)]
  results = {}
  for kind, given in (("true", depth), ("constant", tf.ones_like(depth))):
    found_rotation, found_translation = geometry.motion_from_images(images[:, 0], images[:, 1], given, intrinsics,
                                                                    translation_prior=translation_prior)
    errors = metrics.motion_errors(geometry.angles_from_matrix(found_rotation), found_translation, rotation,
                                   translation)
    results[kind] = tuple(errors[key].numpy() for key in ("rotation_error", "translation_angle", "true_rotation"))
  return results


def main(argv):
  del argv
  flag_values = flags.FLAGS
  config = config_lib.TrainConfig(model_dir="/tmp/unused", stages=("depth_motion",), dataset="synthetic",
                                  synthetic_scenes=20, synthetic_frames=100, height=HEIGHT, width=WIDTH,
                                  synthetic_motion=flag_values.motion)
  scenes = sources.load_scenes(video.source_spec(config), "train")
  blurs = tuple(int(size) for size in flag_values.blurs)
  for gap in flag_values.gaps:
    clip_config = clips.ClipConfig(height=HEIGHT, width=WIDTH, clip_length=2, min_gap=int(gap), max_gap=int(gap),
                                   batch_size=flag_values.pairs, augment=None, include_ground_truth=True, seed=0)
    batch = next(iter(clips.ClipSource(scenes, clip_config).dataset(training=True)))
    rotation, translation = gradient_cosines(batch, blurs)
    print(f"gap {gap}, blurs {blurs}: rotation cosine median {np.median(rotation):+.2f} (positive for "
          f"{np.mean(rotation > 0):.0%} of {len(rotation)} pairs); translation cosine median "
          f"{np.median(translation):+.2f} (positive for {np.mean(translation > 0):.0%})", flush=True)

    def report(step, rotation_error, translation_angle, true_rotation, gap=gap):
      print(f"gap {gap}, blurs {blurs}, free motion step {step}: rotation error mean {np.mean(rotation_error):.2f} "
            f"median {np.median(rotation_error):.2f} deg (true rotation {np.mean(true_rotation):.2f}); translation "
            f"direction error mean {np.mean(translation_angle):.1f} deg", flush=True)
    if flag_values.fit_steps:
      fit_free_motion(batch, blurs, flag_values.fit_steps, flag_values.fit_learning_rate, report)
    matchers = (("exhaustive", patch_match.ncc_flow), ("coarse-to-fine", patch_match.coarse_to_fine_flow))
    for name, matcher in matchers if flag_values.match_radius else ():
      results, match_error = least_squares_pose(batch, flag_values.match_radius, matcher,
                                                flag_values.translation_prior)
      print(f"gap {gap}, {name} patch match within {flag_values.match_radius} px: error against the true flow "
            f"quartiles {np.percentile(match_error, [25, 50, 75]).round(2).tolist()} px", flush=True)
      for kind, (rotation_error, translation_angle, true_rotation) in results.items():
        print(f"gap {gap}, {name} match, least-squares pose with {kind} depth: rotation error mean "
              f"{np.mean(rotation_error):.2f} median {np.median(rotation_error):.2f} deg (true rotation "
              f"{np.mean(true_rotation):.2f}); translation direction error mean {np.mean(translation_angle):.1f} deg",
              flush=True)

    if flag_values.direct:
      for kind, (rotation_error, translation_angle, true_rotation) in direct_pose(
          batch, flag_values.translation_prior).items():
        print(f"gap {gap}, direct alignment with {kind} depth: rotation error mean {np.mean(rotation_error):.2f} "
              f"median {np.median(rotation_error):.2f} deg (true rotation {np.mean(true_rotation):.2f}); "
              f"translation direction error mean {np.mean(translation_angle):.1f} median "
              f"{np.median(translation_angle):.1f} deg", flush=True)


if __name__ == "__main__":
  flags.DEFINE_list("gaps", ["1", "2", "3"], "Frame gaps to measure.")
  flags.DEFINE_enum("motion", "handheld", ["handheld", "dolly"], "Camera motion of the synthetic video.")
  flags.DEFINE_float("translation_prior", motion_net.POSE_TRANSLATION_PRIOR, "Weight of the least-squares pose's "
                     "prior towards a small translation (the stage's constant by default).")
  flags.DEFINE_integer("pairs", 32, "Training pairs per gap (one batch, shuffled with seed 0).")
  flags.DEFINE_list("blurs", ["1"], "Box filter sizes of the photometric comparison (the loss's photometric_blurs).")
  flags.DEFINE_integer("fit_steps", 0, "Adam steps of the free-motion fit (0: gradient cosines only).")
  flags.DEFINE_float("fit_learning_rate", 1e-3, "Adam learning rate of the free-motion fit.")
  flags.DEFINE_integer("match_radius", 0, "Search radius (pixels) of the least-squares pose from a patch match "
                       "(0: not measured).")
  flags.DEFINE_bool("direct", False, "Also solve for the pose by direct photometric alignment "
                    "(`geometry.motion_from_images`) with the true and with a constant depth.")
  app.run(main)

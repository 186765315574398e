"""Which half of depth_motion fails to learn: train one network while the other half comes from ground truth.

    python -m diagnostics.depth_motion_oracle --oracle=motion|depth|none [--steps=300] [--learning_rate=1e-3]
        [--preset=later] [--max_noise_stddev=0.5] [--every=50] [--min_gap=1] [--max_gap=3] [--photometric_blurs=1 ...]
        [--motion_initializer=he_normal] [--motion_trunk=plain] [--pose_solver=regression]
        [--batch_size=4] [--fixed_batches=0] [--eval_batches=10] [--motion=handheld|dolly] [--depth_encoder=resnet18]
        [--height=64] [--width=96]

On the synthetic video (20 scenes x 100 frames, --height x --width = 64x96, handheld or dolly camera, pairs with gap --min_gap..--max_gap, --batch_size pairs, no
augmentation), a custom loop around the stage's own forward pass (`consistency.stages.depth_motion.predict`) and
losses (`depth_motion.losses`):
  --oracle=motion  the true motion (from the poses) and K replace the motion network's: only depth trains;
  --oracle=depth   the true depth replaces the depth network's and K is given: only motion trains;
  --oracle=none    both train, K learned (the stage itself, without its harness);
  --oracle=pose    no photometric loss: the motion network regresses the true motion (L1 of the rotation matrix entries in degrees
                   and of the translation in cm), K given. The supervised reference: how fast the architecture can
                   learn an estimator from these pairs at all.
Every --every steps it prints the loss terms, the visible fraction of directed pair (0, 1) (the occlusion-aware mask
of the photometric loss), the depth map's relative spread, and errors on --eval_batches batches of pairs at gap --min_gap of the
validation scenes ("val") and of the training scenes ("train"): median-scaled depth AbsRel, that of a constant map (the
reference a depth network must beat), the rotation error against the true rotation, and the translation direction
error. With --fixed_batches=N it trains on N fixed batches only, and reports the same errors on them ("fixed"):
whether the network can fit what it sees, apart from whether it generalises.
"""

import itertools
import os
import time

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
from depth_motion import depth_net  # noqa: E402
from depth_motion import geometry  # noqa: E402
from depth_motion import losses as losses_lib  # noqa: E402
from depth_motion import metrics  # noqa: E402
from depth_motion import teachers as teachers_lib  # noqa: E402


def _data(num_scenes, num_frames, min_gap, max_gap, batch_size, motion, height, width, eval_batches):
  config = config_lib.TrainConfig(model_dir="/tmp/unused", stages=("depth_motion",), dataset="synthetic",
                                  synthetic_scenes=num_scenes, synthetic_frames=num_frames, height=height,
                                  width=width, synthetic_motion=motion)
  spec = video.source_spec(config)

  def clip_config(max_gap):
    return clips.ClipConfig(height=height, width=width, clip_length=2, min_gap=min_gap, max_gap=max_gap,
                            batch_size=batch_size,
                            augment=None, include_ground_truth=True, seed=0)
  train = iter(clips.clips(sources.load_scenes(spec, "train"), clip_config(max_gap), training=True))
  val = list(clips.ClipSource(sources.load_scenes(spec, "val"), clip_config(min_gap)).dataset(training=False).take(eval_batches))
  seen = list(clips.ClipSource(sources.load_scenes(spec, "train"),
                               clip_config(min_gap)).dataset(training=False).take(eval_batches))
  return train, val, seen


def main(argv):
  del argv
  flag_values = flags.FLAGS
  oracle = flag_values.oracle
  keras.utils.set_random_seed(0)
  train, val, seen = _data(flag_values.scenes, flag_values.frames, flag_values.min_gap, flag_values.max_gap,
                           flag_values.batch_size, flag_values.motion, flag_values.height, flag_values.width,
                           flag_values.eval_batches)
  splits = [("val", val), ("train", seen)]
  if flag_values.fixed_batches:
    fixed = [next(train) for _ in range(flag_values.fixed_batches)]
    train = itertools.cycle(fixed)
    splits.append(("fixed", fixed))
  settings = {"depth": {"encoder": flag_values.depth_encoder, "max_noise_stddev": flag_values.max_noise_stddev,
                        "noise_ramp_steps": 200},
              "motion": {"residual_translation": False, "learn_intrinsics": oracle == "none", "use_depth": False,
                         "kernel_initializer": flag_values.motion_initializer,
                         "trunk_type": flag_values.motion_trunk, "pose_solver": flag_values.pose_solver},
              "input_size": [flag_values.height, flag_values.width]}
  models = teachers_lib.build_networks(settings)
  weights = losses_lib.loss_weights(preset=flag_values.preset)
  variables = {"motion": models["depth"].trainable_variables, "depth": models["motion"].trainable_variables,
               "pose": models["motion"].trainable_variables,
               "none": models["depth"].trainable_variables + models["motion"].trainable_variables}[oracle]
  optimizer = keras.optimizers.Adam(flag_values.learning_rate, clipnorm=10.0)

  @tf.function
  @tf.autograph.experimental.do_not_convert
  def train_step(batch, step):
    images = batch["image"]
    intrinsics = None if oracle == "none" else tf.cast(batch["intrinsics"], tf.float32)
    with tf.GradientTape() as tape:
      true_depths = tf.cast(batch["depth"], tf.float32) if oracle in ("depth", "pose") else None
      depths, motions = teachers_lib.predict(models, images, step=step, training=True, intrinsics=intrinsics,
                                                   depths=true_depths)
      if oracle == "motion":
        for pair, (rotation, translation) in ground_truth.pair_motions(batch["pose"], list(motions)).items():
          motions[pair] = {"rotation": rotation, "translation": translation}
      losses, masks = losses_lib.clip_losses(images, depths, motions, intrinsics=intrinsics,
                                             occlusion_tolerance=flag_values.occlusion_tolerance,
                                             photometric_blurs=flag_values.photometric_blurs)
      if oracle == "pose":  # the photometric losses above only give the visible fraction printed below
        used = {}
        for pair, (rotation, translation) in ground_truth.pair_motions(batch["pose"], list(motions)).items():
          predicted = geometry.matrix_from_angles(motions[pair]["rotation"])
          used[f"rotation_l1{pair}"] = tf.reduce_mean(tf.abs(predicted - rotation)) * 180 / np.pi
          used[f"translation_cm_l1{pair}"] = tf.reduce_mean(tf.abs(motions[pair]["translation"] - translation)) * 100
        total = tf.add_n(list(used.values()))
      else:
        used = {name: value for name, value in losses.items() if weights[name] != 0}
        total, _ = losses_lib.weighted_total(used, weights, step)
    optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    depth = depths[:, 0]
    spread = tf.math.reduce_std(depth / tf.reduce_mean(depth, axis=[1, 2], keepdims=True))
    return used, tf.reduce_mean(masks[(0, 1)]["visible"]), spread

  @tf.function
  @tf.autograph.experimental.do_not_convert
  def eval_step(batch):
    image = tf.cast(batch["image"], tf.float32)
    truth = batch["depth"][:, 0]
    depth = depth_net.flip_min_depth(models["depth"], image[:, 0])
    errors = metrics.depth_errors(depth, truth, median_scaling=True)
    constant = metrics.depth_errors(tf.ones_like(depth), truth, median_scaling=True)
    intrinsics = None if oracle == "none" else tf.cast(batch["intrinsics"], tf.float32)
    true_depths = tf.cast(batch["depth"], tf.float32) if oracle in ("depth", "pose") else None
    _, motions = teachers_lib.predict(models, image, intrinsics=intrinsics, depths=true_depths)
    rotation, translation = ground_truth.pair_motions(batch["pose"], [(0, 1)])[(0, 1)]
    motion = metrics.motion_errors(motions[(0, 1)]["rotation"], motions[(0, 1)]["translation"], rotation, translation)
    return tf.stack([tf.reduce_mean(errors["abs_rel"]), tf.reduce_mean(constant["abs_rel"]),
                     tf.reduce_mean(motion["rotation_error"]), tf.reduce_mean(motion["true_rotation"]),
                     tf.reduce_mean(motion["translation_angle"])])

  def evaluate():
    text = []
    for name, batches in splits:
      values = np.mean([eval_step(batch).numpy() for batch in batches], axis=0)
      text.append(f"{name}: AbsRel %.3f (constant map %.3f) | rotation error %.3f deg of %.3f | translation angle "
                  "%.1f deg" % tuple(values))
    return " || ".join(text)

  print(f"oracle={oracle} step 0 | {evaluate()}", flush=True)
  start = time.time()
  for step in range(1, flag_values.steps + 1):
    used, visible, spread = train_step(next(train), tf.constant(step - 1, tf.int64))
    if step % flag_values.every == 0:
      terms = " ".join(f"{name} {float(value):.4g}" for name, value in used.items())
      print(f"oracle={oracle} step {step} ({time.time() - start:.0f} s) | {terms} | visible {float(visible):.3f} | "
            f"depth spread {float(spread):.3f} | {evaluate()}", flush=True)


if __name__ == "__main__":
  flags.DEFINE_enum("oracle", "motion", ["motion", "depth", "none", "pose"], "What comes from ground truth (see above).")
  flags.DEFINE_integer("scenes", 20, "Synthetic scenes (every fifth is validation).")
  flags.DEFINE_integer("frames", 100, "Frames per synthetic scene.")
  flags.DEFINE_integer("height", 64, "Image height (a multiple of 32).")
  flags.DEFINE_integer("width", 96, "Image width (a multiple of 32).")
  flags.DEFINE_enum("motion", "handheld", ["handheld", "dolly"], "Camera motion of the synthetic video.")
  flags.DEFINE_enum("depth_encoder", "resnet18", ["resnet18", "efficientnet_lite0"], "The depth network's encoder.")
  flags.DEFINE_integer("steps", 300, "Training steps.")
  flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
  flags.DEFINE_enum("preset", "later", sorted(losses_lib.WEIGHT_PRESETS), "Loss weight preset.")
  flags.DEFINE_float("max_noise_stddev", 0.5, "Randomized layer normalization noise (ramped over 200 steps).")
  flags.DEFINE_float("occlusion_tolerance", 0.0, "Relative depth tolerance of the visibility test (0: strict).")
  flags.DEFINE_integer("min_gap", 1, "Smallest frame gap of the training pairs, and the gap of the evaluation pairs.")
  flags.DEFINE_integer("max_gap", 3, "Largest frame gap of the training pairs (drawn uniformly from min_gap..max_gap).")
  flags.DEFINE_multi_integer("photometric_blurs", [1], "Box filter sizes of the photometric comparison "
                             "(repeat the flag for several, e.g. --photometric_blurs=1 --photometric_blurs=5).")
  flags.DEFINE_string("motion_initializer", "he_normal", "The motion network's convolution kernel initializer "
                      "(glorot_uniform: the original).")
  flags.DEFINE_enum("motion_trunk", "plain", ["plain", "correlation"], "The motion network's trunk.")
  flags.DEFINE_enum("pose_solver", "regression", ["regression", "least_squares"], "The motion network's pose "
                    "(least_squares: from a patch match and the depth; with --oracle=depth or pose it uses the true "
                    "depth).")
  flags.DEFINE_integer("batch_size", 4, "Pairs per training and evaluation batch.")
  flags.DEFINE_integer("fixed_batches", 0, "Train on this many fixed batches of the stream, over and over, and "
                       "evaluate on them too ('fixed'): can the network fit what it sees? (0: the stream).")
  flags.DEFINE_integer("eval_batches", 10, "Batches of evaluation pairs per split (the first of each split, in "
                       "order: scene by scene).")
  flags.DEFINE_integer("every", 50, "Print every this many steps.")
  app.run(main)

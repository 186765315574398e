"""The depth_motion stage's networks as a record other stages use: their settings (depth_motion.json), built and
restored as frozen teachers, their forward pass over clips, and the per-video K they learned (intrinsics.json).

    settings = teachers.network_settings(config)          # what the stage writes to <model_dir>/depth_motion
    models, settings = teachers.load_teachers(stage_dir)  # {"depth": DepthNet, "motion": MotionNet}, restored
    depths, motions = teachers.predict(models, clips)     # every frame's depth, every directed pair's motion
    size, intrinsics = teachers.learned_intrinsics(stage_dir) or (None, None)
"""

import json
import os

import numpy as np
import tensorflow as tf

from depth_motion import depth_net as depth_net_lib
from depth_motion import geometry
from depth_motion import losses as losses_lib
from depth_motion import motion_net as motion_net_lib

MODEL_CONFIG_FILE = "depth_motion.json"
# With --dm_intrinsics=per_video: each training video's learned K (`write_learned_intrinsics`, `learned_intrinsics`).
INTRINSICS_FILE = "intrinsics.json"


def network_settings(config):
  """The JSON-serialisable description of the stage's networks (what `load_teachers` rebuilds), from a TrainConfig."""
  return {"depth": {"encoder": config.dm_depth_encoder, "max_noise_stddev": config.dm_max_noise_stddev,
                    "noise_ramp_steps": config.dm_noise_ramp_steps},
          "motion": {"residual_translation": config.dm_residual_translation,
                     "learn_intrinsics": config.dm_intrinsics == "learned",
                     "use_depth": config.dm_motion_uses_depth,
                     "trunk_type": config.dm_motion_trunk,
                     "correlation_radius": config.dm_motion_correlation_radius,
                     "pose_solver": config.dm_motion_pose_solver,
                     "match_radius": config.dm_motion_match_radius},
          "input_size": [config.height, config.width],
          "intrinsics": config.dm_intrinsics}


def build_networks(settings):
  """{"depth": DepthNet, "motion": MotionNet} built (variables created) from `network_settings` output."""
  height, width = settings["input_size"]
  depth = depth_net_lib.DepthNet(name="depth", **settings["depth"])
  motion = motion_net_lib.MotionNet(name="motion", **settings["motion"])
  images = tf.zeros([1, height, width, 3])
  depth(images, training=False)
  inputs = {"image_i": images, "image_j": images, "intrinsics": tf.eye(3, batch_shape=[1]),
            "depth_i": tf.ones([1, height, width]), "depth_j": tf.ones([1, height, width])}
  motion(inputs, training=False)
  return {"depth": depth, "motion": motion}


# Options a depth_motion.json written by an earlier version may hold, removed since (docs/teachers.md says why):
# (network, setting) -> the value that leaves the network as it is now.
_REMOVED_OPTIONS = {("depth", "mean_normalized"): False, ("motion", "center_images"): False}


def _without_removed_options(settings, path):
  """`settings` without the removed options that made no difference; one that did cannot be rebuilt: ValueError.

  center_images changed only the motion network's trunk, which a solved pose with K given does not have.
  """
  settings = {key: dict(value) if isinstance(value, dict) else value for key, value in settings.items()}
  motion = settings.get("motion", {})
  trunkless = motion.get("pose_solver", "regression") != "regression" and not motion.get("learn_intrinsics", True)
  for (network, name), neutral in _REMOVED_OPTIONS.items():
    if name in settings.get(network, {}):
      value = settings[network].pop(name)
      if value != neutral and not (name == "center_images" and trunkless):
        raise ValueError(f"{path}: these teachers were trained with the {network} network's {name}={value}, an "
                         "option this version removed (docs/teachers.md, 'Options deleted'); retrain them.")
  return settings


def load_teachers(stage_dir):
  """The trained depth and motion networks of a depth_motion stage directory, restored from its latest checkpoint.

  Args:
    stage_dir: `<model_dir>/depth_motion` of a finished (or partly trained) run.

  Returns:
    ({"depth": DepthNet, "motion": MotionNet}, settings dict) with every variable restored.

  Raises:
    FileNotFoundError: no depth_motion.json or no checkpoint in `stage_dir`.
  """
  path = os.path.join(stage_dir, MODEL_CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {stage_dir} is not the directory of a depth_motion stage (run "
                            "--stages=depth_motion first, or point at <model_dir>/depth_motion).")
  with open(path, encoding="utf-8") as f:
    settings = json.load(f)
  settings = _without_removed_options(settings, path)
  checkpoint = tf.train.latest_checkpoint(stage_dir)
  if not checkpoint:
    raise FileNotFoundError(f"No checkpoint in {stage_dir}: train the depth_motion stage first.")
  networks = build_networks(settings)
  status = tf.train.Checkpoint(**networks).read(checkpoint)
  status.assert_existing_objects_matched()
  status.expect_partial()  # the optimizer and step are not restored
  return networks, settings


def write_learned_intrinsics(stage_dir, scenes, learned, size):
  """Writes `stage_dir`/intrinsics.json: each video's learned K at the working `size` and at the video's own size.

    {"working_size": [h, w], "videos": {name: {"native_size": [H, W], "native": [fx, fy, cx, cy],
                                               "working": [fx, fy, cx, cy]}}}

  Args:
    scenes: the training scenes (`scannet.SceneIndex`), in the table's order.
    learned: [S, 3, 3] K of each scene at `size`.
    size: (height, width) the K refer to.
  """
  videos = {}
  for scene, k in zip(scenes, np.asarray(learned, np.float32)):
    native_size = scene.native_size or scene.color_size
    native = geometry.resize_intrinsics(k, size, native_size)
    videos[scene.name] = {"native_size": [int(v) for v in native_size],
                          "native": [round(float(v), 3) for v in geometry.intrinsics_params(native)],
                          "working": [round(float(v), 4) for v in geometry.intrinsics_params(k)]}
  os.makedirs(stage_dir, exist_ok=True)
  path = os.path.join(stage_dir, INTRINSICS_FILE)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump({"working_size": [int(v) for v in size], "videos": videos}, f, indent=2)
  os.replace(path + ".tmp", path)


def learned_intrinsics(stage_dir):
  """((height, width), {video name: [3, 3] float32 K at that size}) that teachers trained with
  --dm_intrinsics=per_video learned, or None for teachers that learned no per-video K (or do not exist yet)."""
  try:
    with open(os.path.join(stage_dir, MODEL_CONFIG_FILE), encoding="utf-8") as f:
      mode = json.load(f).get("intrinsics")
  except FileNotFoundError:
    return None
  if mode != "per_video":
    return None
  path = os.path.join(stage_dir, INTRINSICS_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: the teachers in {stage_dir} learned one K per video, which their "
                            "evaluation writes there; finish (or rerun) their depth_motion stage.")
  with open(path, encoding="utf-8") as f:
    record = json.load(f)
  return (tuple(record["working_size"]),
          {name: geometry.make_intrinsics(*video["working"]).numpy() for name, video in record["videos"].items()})


def predict(models, images, step=None, training=False, intrinsics=None, residual_ramp=None, depths=None):
  """Depth of every frame and motion of every directed pair of clips: the stage's forward pass (and the teachers').

  Args:
    models: {"depth": DepthNet, "motion": MotionNet}.
    images: [B, T, H, W, 3] clips in [0, 1] (T static).
    step: training step (randomized layer norm noise ramp and residual field ramp); None = no ramps.
    training: noise in the depth network's normalization.
    intrinsics: [B, 3, 3] K for a motion network that does not learn it; None otherwise.
    residual_ramp: (begin, end) steps of the residual translation ramp, applied when `step` is given.
    depths: optional [B, T, H, W] depths that replace the depth network's (an oracle: the ground truth).

  Returns:
    (depths [B, T, H, W] float32, {(i, j): MotionNet output (float32) for every pair of `losses.directed_pairs(T)`}).
  """
  images = tf.convert_to_tensor(images, tf.float32)
  num_frames = images.shape[1]
  batch = tf.shape(images)[0]
  frames = tf.reshape(images, tf.concat([[-1], tf.shape(images)[2:]], axis=0))
  if depths is None:
    depth = models["depth"](frames, training=training, step=step)["depth"]
    depths = tf.reshape(tf.cast(depth, tf.float32), tf.concat([[batch, num_frames], tf.shape(depth)[1:]], axis=0))
  depths = tf.convert_to_tensor(depths, tf.float32)
  pairs = losses_lib.directed_pairs(num_frames)
  # Every directed pair stacked along the batch: one network call for all of them.
  inputs = {"image_i": tf.concat([images[:, i] for i, _ in pairs], axis=0),
            "image_j": tf.concat([images[:, j] for _, j in pairs], axis=0)}
  if models["motion"].takes_depth:  # use_depth, or the least-squares pose
    inputs["depth_i"] = tf.concat([depths[:, i] for i, _ in pairs], axis=0)
    inputs["depth_j"] = tf.concat([depths[:, j] for _, j in pairs], axis=0)
  if intrinsics is not None:
    inputs["intrinsics"] = tf.tile(intrinsics, [len(pairs), 1, 1])
  stacked = models["motion"](inputs, training=training)
  stacked = {key: tf.cast(value, tf.float32) for key, value in stacked.items()}
  if "residual_translation" in stacked and step is not None and residual_ramp is not None:
    stacked["residual_translation"] *= motion_net_lib.residual_translation_ramp(step, *residual_ramp)
  split = {key: tf.split(value, len(pairs), axis=0) for key, value in stacked.items()}
  return depths, {pair: {key: split[key][k] for key in split} for k, pair in enumerate(pairs)}

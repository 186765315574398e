"""Ground-truth correspondences between two posed RGB-D frames: optical flow, validity and occlusion.

Computed from depth, camera-to-world poses and intrinsics through the geometry core, so the synthetic generator's
ground truth, the inspect command and the evaluation of learned depth/flow all share one definition.
"""

import collections

import tensorflow as tf

from depth_motion import geometry

# Relative depth tolerance for "the point is the surface the other frame sees": bilinear resampling of depth at depth
# edges blends surfaces, and sensor depth is quantised (ScanNet: 1 mm).
OCCLUSION_DEPTH_TOLERANCE = 0.02

# Stand-in for missing target depth, in metres.
MISSING_DEPTH_STAND_IN = 1e6

FrameCorrespondence = collections.namedtuple("FrameCorrespondence", ["flow", "valid", "visible"])
FrameCorrespondence.__doc__ = """Result of `correspondence`, all on the source frame's pixel grid.

flow:    [B, H, W, 2] optical flow source -> target in pixels (dx, dy).
valid:   [B, H, W] bool: source depth known (> 0), lands inside the target image and in front of its camera.
visible: [B, H, W] bool: valid and not hidden in the target frame (needs the target's depth); equals `valid` when
         no target depth is given.
"""


def pair_motions(poses, pairs):
  """The true motion of every directed pair of a clip, in the motion network's convention.

  Args:
    poses: [B, T, 4, 4] camera-to-world poses of the clip's frames.
    pairs: iterable of (i, j) frame indices.

  Returns:
    {(i, j): (R [B, 3, 3], t [B, 3])}: the motion carrying camera-j points into camera i (what `MotionNet` predicts
    from the input order (image_i, image_j)).
  """
  poses = tf.convert_to_tensor(poses, tf.float32)
  return {(i, j): geometry.motion_from_poses(poses[:, j], poses[:, i]) for i, j in pairs}


def correspondence(source_depth, source_pose, target_pose, intrinsics, target_depth=None,
                   depth_tolerance=OCCLUSION_DEPTH_TOLERANCE):
  """Flow and occlusion from a source frame to a target frame of a static scene.

  Args:
    source_depth: [B, H, W] z-depth of the source frame in metres; 0 (or less) marks missing depth.
    source_pose, target_pose: [B, 4, 4] camera-to-world poses.
    intrinsics: [B, 3, 3] intrinsics of both frames at this resolution.
    target_depth: optional [B, H, W] target depth, for the occlusion test.
    depth_tolerance: relative depth difference still counted as the same surface.

  Returns:
    A `FrameCorrespondence`.
  """
  source_depth = tf.convert_to_tensor(source_depth, tf.float32)
  rotation, translation = geometry.motion_from_poses(source_pose, target_pose)
  warp = geometry.depth_warp(source_depth, rotation, translation, intrinsics)
  valid = warp.valid & (source_depth > 0.0)
  visible = valid
  if target_depth is not None:
    target_depth = tf.convert_to_tensor(target_depth, tf.float32)
    # Missing target depth (0) cannot hide anything: treat it as very far (finite: bilinear weights of 0 times inf
    # would give NaN).
    far = tf.where(target_depth > 0.0, target_depth, MISSING_DEPTH_STAND_IN)
    resampled = geometry.resample(far[..., tf.newaxis], warp.coords, boundary="border")[..., 0]
    visible = geometry.closer_to_camera(warp._replace(valid=valid), resampled, relative_tolerance=depth_tolerance)
  return FrameCorrespondence(flow=geometry.flow_from_coords(warp.coords), valid=valid, visible=visible)

"""Occlusion masks: depth ordering, forward-backward flow consistency, correspondences that leave the image.

Every function returns a bool tensor; cast it where a float weight is needed.
"""

import tensorflow as tf

from depth_motion.geometry import camera
from depth_motion.geometry import warping


def closer_to_camera(warp, resampled_depth, relative_tolerance=0.0):
  """Pixels of frame j whose warped point is not hidden in frame i ("frame j closer to camera").

  Args:
    warp: the `DepthWarp` of frame j into frame i.
    resampled_depth: [B, H, W] frame i's depth resampled at `warp.coords`.
    relative_tolerance: a point counts as visible while z <= (1 + tol) * resampled depth. 0 gives the original
      code's strict test z < resampled depth (meant for a loss on predicted depth); ground-truth depth needs a small
      tolerance (e.g. 0.02) because bilinear resampling at depth edges blends surfaces.

  Returns:
    [B, H, W] bool: valid and in front of (or on) frame i's surface.
  """
  if relative_tolerance == 0.0:
    in_front = warp.depth < resampled_depth
  else:
    in_front = warp.depth <= resampled_depth * (1.0 + relative_tolerance)
  return warp.valid & in_front


def leaves_image(flow):
  """[B, H, W] bool: pixels whose correspondence x + flow(x) falls outside the other image (EFC's occlusion target).

  Inside means where the resampler needs no padding: 0 <= x <= W-1 and 0 <= y <= H-1.
  """
  coords = warping.coords_from_flow(flow)
  shape = tf.shape(flow)
  return tf.logical_not(camera.inside_image(coords, shape[1], shape[2]))


def forward_backward_occlusion(flow_forward, flow_backward, alpha1=0.01, alpha2=0.5):
  """[B, H, W] bool occlusion of frame 1 from forward-backward consistency (UnFlow, Meister et al. 2018).

  A pixel is occluded when the forward flow and the backward flow found where it lands do not cancel:
  |F_fw + F_bw(x + F_fw)|^2 > alpha1 (|F_fw|^2 + |F_bw(x + F_fw)|^2) + alpha2.

  Args:
    flow_forward: [B, H, W, 2] flow frame 1 -> frame 2.
    flow_backward: [B, H, W, 2] flow frame 2 -> frame 1.
    alpha1, alpha2: relative and absolute tolerances (UnFlow's defaults).
  """
  flow_forward = tf.convert_to_tensor(flow_forward, tf.float32)
  backward_at_target = warping.warp_with_flow(flow_backward, flow_forward, boundary="border")
  mismatch = tf.reduce_sum(tf.square(flow_forward + backward_at_target), axis=-1)
  magnitude = (tf.reduce_sum(tf.square(flow_forward), axis=-1) +
               tf.reduce_sum(tf.square(backward_at_target), axis=-1))
  return mismatch > alpha1 * magnitude + alpha2

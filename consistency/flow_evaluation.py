"""How a flow estimate is scored against the ground truth of a video with depth and poses (synthetic video, ScanNet):
additive statistics per batch (summed over batches and replicas), then metrics. The EFC stage's evaluation and
`consistency.flow_peers` both use it, so the flow network and the classical methods are scored identically.

  flow_epe_all   mean end-point error (pixels) over the pixels whose ground truth is known (depth > 0)
  flow_epe_noc   over the non-occluded ones (visible in the other frame)
  flow_fl_all    Fl (KITTI): fraction of the known pixels with EPE > 3 px and > 5 % of the ground-truth magnitude
  zero_flow_epe_all  EPE of predicting zero flow, for scale
  gt_occlusion_fraction  fraction of the known pixels that are occluded in the other frame
  occlusion_precision / _recall / _f1  predicted occlusion (probability > 0.5) against the true occlusion (known,
                 not visible), when an occlusion estimate is given
  out_of_frame_precision / _recall / _f1  the same for EFC's occlusion target computed from the flow itself
                 (occluded where x + F(x) leaves the image): what the occlusion heads are taught; the true flow's
                 is the most that definition can reach (pixels hidden behind nearer surfaces stay in the image)
EPE and Fl are pooled over all evaluated pixels; KITTI's devkit averages EPE per image first (`datasets.flow_metrics`
has that, for KITTI's own ground truth).
"""

import tensorflow as tf

from datasets import ground_truth
from depth_motion import geometry

# KITTI's outlier definition (Fl): EPE above 3 px and above 5 % of the ground-truth magnitude.
FL_PIXELS = 3.0
FL_RELATIVE = 0.05
OCCLUSION_THRESHOLD = 0.5
OCCLUSION_ESTIMATES = ("occlusion", "out_of_frame")
FLOW_METRICS = ("flow_epe_all", "flow_epe_noc", "flow_fl_all", "zero_flow_epe_all", "gt_occlusion_fraction") + tuple(
    f"{estimate}_{metric}" for estimate in OCCLUSION_ESTIMATES for metric in ("precision", "recall", "f1"))


def true_flow(batch):
  """(flow [B, H, W, 2] with 0 where unknown, known [B, H, W] bool, visible [B, H, W] bool) of the first frame of
  each pair of `batch` (image [B, 2, H, W, 3], depth [B, 2, H, W], pose [B, 2, 4, 4], intrinsics [B, 3, 3])."""
  depth = batch["depth"]
  truth = ground_truth.correspondence(depth[:, 0], batch["pose"][:, 0], batch["pose"][:, 1], batch["intrinsics"],
                                      target_depth=depth[:, 1])
  known = (depth[:, 0] > 0.0) & tf.reduce_all(tf.math.is_finite(truth.flow), axis=-1)
  return tf.where(known[..., tf.newaxis], truth.flow, 0.0), known, known & truth.visible


def statistics(flow, true, known, visible, occlusion=None):
  """{name: float64 sum} of one batch: flow [B, H, W, 2] against `true_flow`'s (true, known, visible); occlusion
  [B, H, W] probabilities (optional) against the true occlusion."""
  epe = tf.norm(tf.cast(flow, tf.float32) - true, axis=-1)
  magnitude = tf.norm(true, axis=-1)
  outlier = (epe > FL_PIXELS) & (epe > FL_RELATIVE * magnitude)
  occluded = known & ~visible

  def total(values, mask):
    return tf.reduce_sum(tf.where(mask, tf.cast(values, tf.float64), 0.0))

  def count(mask):
    return tf.reduce_sum(tf.cast(mask, tf.float64))

  def confusion(estimate, predicted):
    predicted = known & predicted
    return {f"{estimate}_tp": count(occluded & predicted), f"{estimate}_fp": count(predicted & ~occluded),
            f"{estimate}_fn": count(occluded & ~predicted)}

  result = dict(epe_all=total(epe, known), epe_noc=total(epe, visible), outliers_all=count(known & outlier),
                zero_flow_epe_all=total(magnitude, known), pixels_all=count(known), pixels_noc=count(visible),
                occlusion_pixels=count(occluded), **confusion("out_of_frame", geometry.leaves_image(flow)))
  if occlusion is not None:
    result.update(confusion("occlusion", occlusion > OCCLUSION_THRESHOLD))
  return result


def metrics(totals):
  """(metrics, absent) of summed `statistics`: absent lists (metric names, why) of those the data cannot give."""
  result, absent = {}, []
  pixels_all, pixels_noc = float(totals["pixels_all"]), float(totals["pixels_noc"])
  if not pixels_all:
    return result, [(list(FLOW_METRICS), "no evaluated pixel has ground-truth flow")]
  result.update(flow_epe_all=float(totals["epe_all"]) / pixels_all,
                flow_fl_all=float(totals["outliers_all"]) / pixels_all,
                zero_flow_epe_all=float(totals["zero_flow_epe_all"]) / pixels_all,
                gt_occlusion_fraction=float(totals["occlusion_pixels"]) / pixels_all)
  if pixels_noc:
    result["flow_epe_noc"] = float(totals["epe_noc"]) / pixels_noc
  else:
    absent.append((["flow_epe_noc"], "no pixel with ground-truth flow is visible in the other frame"))
  for estimate in OCCLUSION_ESTIMATES:
    if f"{estimate}_tp" not in totals:
      continue
    tp, fp, fn = (float(totals[f"{estimate}_{k}"]) for k in ("tp", "fp", "fn"))
    if tp + fp:
      result[f"{estimate}_precision"] = tp / (tp + fp)
    else:
      absent.append(([f"{estimate}_precision"], "no pixel with ground-truth flow was predicted occluded"))
    if tp + fn:
      result[f"{estimate}_recall"] = tp / (tp + fn)
    else:
      absent.append(([f"{estimate}_recall"], "no pixel with ground-truth flow is occluded"))
    if tp + fp + fn:
      result[f"{estimate}_f1"] = 2 * tp / (2 * tp + fp + fn)
    else:
      absent.append(([f"{estimate}_f1"], "no pixel is occluded or predicted occluded"))
  return result, absent

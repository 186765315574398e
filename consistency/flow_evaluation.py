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
EPE and Fl are pooled over all evaluated pixels; KITTI's devkit averages EPE per image first (`datasets.flow_metrics`
has that, for KITTI's own ground truth).
"""

import tensorflow as tf

from datasets import ground_truth

# KITTI's outlier definition (Fl): EPE above 3 px and above 5 % of the ground-truth magnitude.
FL_PIXELS = 3.0
FL_RELATIVE = 0.05
OCCLUSION_THRESHOLD = 0.5
FLOW_METRICS = ("flow_epe_all", "flow_epe_noc", "flow_fl_all", "zero_flow_epe_all", "gt_occlusion_fraction",
                "occlusion_precision", "occlusion_recall", "occlusion_f1")


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

  result = dict(epe_all=total(epe, known), epe_noc=total(epe, visible), outliers_all=count(known & outlier),
                zero_flow_epe_all=total(magnitude, known), pixels_all=count(known), pixels_noc=count(visible),
                occlusion_pixels=count(occluded))
  if occlusion is not None:
    predicted = known & (occlusion > OCCLUSION_THRESHOLD)
    result.update(occlusion_tp=count(occluded & predicted), occlusion_fp=count(predicted & ~occluded),
                  occlusion_fn=count(occluded & ~predicted))
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
  if "occlusion_tp" not in totals:
    return result, absent
  tp, fp, fn = (float(totals[k]) for k in ("occlusion_tp", "occlusion_fp", "occlusion_fn"))
  if tp + fp:
    result["occlusion_precision"] = tp / (tp + fp)
  else:
    absent.append((["occlusion_precision"], "no pixel with ground-truth flow was predicted occluded"))
  if tp + fn:
    result["occlusion_recall"] = tp / (tp + fn)
  else:
    absent.append((["occlusion_recall"], "no pixel with ground-truth flow is occluded"))
  if tp + fp + fn:
    result["occlusion_f1"] = 2 * tp / (2 * tp + fp + fn)
  else:
    absent.append((["occlusion_f1"], "no pixel is occluded or predicted occluded"))
  return result, absent

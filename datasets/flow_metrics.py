"""Optical-flow metrics exactly as the KITTI devkits compute them (NumPy, float32 like the C++ code).

  EPE    average end-point error over the ground truth's valid pixels, per image (flow 2012 devkit,
         flowErrorsAverage), then the mean over images (its statMean). "all" uses flow_occ, "noc" flow_noc.
  Fl     percentage of outliers among the ground truth's valid pixels, where an outlier has an end-point error
         > 3 px and > 5 % of the true flow's magnitude (flow 2015 devkit, flowErrorsOutlier); outliers and pixels are
         summed over all images before dividing. Fl-all uses flow_occ, Fl-noc flow_noc.
Before either, the estimate's invalid pixels are filled as the devkit's FlowImage::interpolateBackground does
(`interpolate_background`); `density` is the fraction of ground-truth pixels the estimate itself covered.
"""

import dataclasses

import numpy as np

ABS_THRESHOLD = 3.0
REL_THRESHOLD = 0.05


def interpolate_background(flow, valid):
  """The devkit's fill of invalid estimated flow: each interior gap of a row takes the smaller of its two bordering
  flows (per component); then rows extend their first / last valid flow to the left / right edge, then columns to
  the top / bottom. Invalid pixels start at zero flow (as read from a PNG); a row without any valid pixel that lies
  between valid rows stays invalid, as in the devkit.

  Args:
    flow: [H, W, 2] estimated flow.
    valid: [H, W] bool.

  Returns:
    (flow [H, W, 2] float32, valid [H, W] bool) after filling.
  """
  valid = np.array(valid, bool)
  # Invalid pixels hold zero flow, as the devkit reads them from a flow PNG.
  flow = np.where(valid[..., np.newaxis], np.asarray(flow, np.float32), np.float32(0.0))
  height, width = valid.shape
  for v in range(height):
    row_valid, row = valid[v], flow[v]
    count = 0
    for u in range(width):
      if row_valid[u]:
        if count >= 1:
          u1, u2 = u - count, u - 1
          if u1 > 0 and u2 < width - 1:
            row[u1:u2 + 1] = np.minimum(row[u1 - 1], row[u2 + 1])
            row_valid[u1:u2 + 1] = True
        count = 0
      else:
        count += 1
    indices = np.flatnonzero(row_valid)
    if indices.size:
      first, last = indices[0], indices[-1]
      row[:first], row[last + 1:] = row[first], row[last]
      row_valid[:first] = row_valid[last + 1:] = True
  for u in range(width):
    indices = np.flatnonzero(valid[:, u])
    if indices.size:
      first, last = indices[0], indices[-1]
      flow[:first, u], flow[last + 1:, u] = flow[first, u], flow[last, u]
      valid[:first, u] = valid[last + 1:, u] = True
  return flow, valid


@dataclasses.dataclass
class ImageErrors:
  """One image's error statistics against one ground truth.

  Attributes:
    epe: average end-point error over the ground truth's valid pixels (0 when there are none).
    outliers: count of Fl outliers among them.
    pixels: count of ground-truth valid pixels.
    covered: count of those the estimate itself (before filling) had valid.
  """
  epe: float
  outliers: int
  pixels: int
  covered: int


def image_errors(gt_flow, gt_valid, flow, valid=None):
  """`ImageErrors` of estimated `flow` [H, W, 2] (valid [H, W], default all) against ground truth of the same size."""
  gt_flow = np.asarray(gt_flow, np.float32)
  gt_valid = np.asarray(gt_valid, bool)
  flow = np.asarray(flow, np.float32)
  if flow.shape != gt_flow.shape:
    raise ValueError(f"Estimated flow has shape {flow.shape}; the ground truth {gt_flow.shape}.")
  original_valid = np.ones(gt_valid.shape, bool) if valid is None else np.asarray(valid, bool)
  filled, _ = interpolate_background(flow, original_valid)
  difference = gt_flow - filled
  error = np.sqrt(np.sum(difference * difference, axis=-1, dtype=np.float32))
  magnitude = np.sqrt(np.sum(gt_flow * gt_flow, axis=-1, dtype=np.float32))
  with np.errstate(divide="ignore", invalid="ignore"):
    outlier = (error > ABS_THRESHOLD) & (error / magnitude > REL_THRESHOLD)
  pixels = int(gt_valid.sum())
  epe = float(np.sum(error[gt_valid], dtype=np.float32) / max(float(pixels), 1.0))
  return ImageErrors(epe=epe, outliers=int(np.sum(outlier & gt_valid)), pixels=pixels,
                     covered=int(np.sum(original_valid & gt_valid)))


def summarize(errors_occ, errors_noc):
  """Dataset metrics from per-image `ImageErrors` against flow_occ and flow_noc (same images, same order).

  Returns:
    {"epe_all", "epe_noc" (px), "fl_all", "fl_noc" (percent), "density" (fraction), "num_images"}.
  """
  if not errors_occ or len(errors_occ) != len(errors_noc):
    raise ValueError(f"Need the same non-zero number of occ and noc results. Received {len(errors_occ)} and "
                     f"{len(errors_noc)}.")

  def outlier_percent(errors):
    return 100.0 * sum(e.outliers for e in errors) / max(sum(e.pixels for e in errors), 1)

  return {
      "epe_all": float(np.mean([e.epe for e in errors_occ])),
      "epe_noc": float(np.mean([e.epe for e in errors_noc])),
      "fl_all": outlier_percent(errors_occ),
      "fl_noc": outlier_percent(errors_noc),
      "density": sum(e.covered for e in errors_occ) / max(sum(e.pixels for e in errors_occ), 1),
      "num_images": len(errors_occ),
  }

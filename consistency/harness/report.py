"""The end-of-run summary `python -m consistency.train` prints: each stage's headline metrics and where things are.

    summarize(model_dir, stages, export_dir="") -> str
"""

import json
import os

from depth_motion import teachers as teachers_lib

# Headline metrics per stage, in print order: (metrics.json key, label, format).
_HEADLINES = {
    "depth_motion": (("depth_abs_rel_median_scaled", "depth AbsRel (median-scaled)", "{:.3f}"),
                     ("depth_abs_rel_constant_reference", "a constant map's", "{:.3f}"),
                     ("depth_delta1_median_scaled", "delta<1.25", "{:.3f}"),
                     ("depth_relative_spread", "depth std/mean", "{:.3f}"),
                     ("depth_true_relative_spread", "true", "{:.3f}"),
                     ("training_video/depth_abs_rel_median_scaled", "training-video AbsRel", "{:.3f}"),
                     ("training_video/depth_abs_rel_constant_reference", "a constant map's", "{:.3f}"),
                     ("rotation_error_deg", "rotation error (deg)", "{:.3f}"),
                     ("true_rotation_deg", "true rotation (deg)", "{:.3f}"),
                     ("translation_angle_deg", "translation angle (deg)", "{:.1f}"),
                     ("warp_epe_px", "warp error (px)", "{:.2f}"),
                     ("zero_flow_epe_px", "no motion's", "{:.2f}"),
                     ("fx_relative_error", "fx rel. error", "{:.3f}")),
    "segmentation": (("miou", "mIoU", "{:.4f}"), ("pixel_accuracy", "pixel accuracy", "{:.4f}")),
    "control": (("miou", "mIoU", "{:.4f}"), ("pixel_accuracy", "pixel accuracy", "{:.4f}")),
    "consistency": (("miou", "mIoU", "{:.4f}"), ("pixel_accuracy", "pixel accuracy", "{:.4f}")),
    "efc": (("miou", "mIoU", "{:.4f}"), ("flow_epe_all", "flow EPE all", "{:.3f}"),
            ("flow_epe_noc", "flow EPE noc", "{:.3f}")),
}
_TITLES = {"segmentation": "baseline (labelled frames only)",
           "control": "the baseline continued without the consistency loss",
           "consistency": "the baseline continued with the losses on unlabeled frames"}


def read_metrics(model_dir, stage):
  """The stage's metrics.json as a dict, or None if it has none."""
  path = os.path.join(model_dir, stage, "metrics.json")
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _side_by_side(model_dir, stages):
  """The line comparing the baseline, the control and the consistency run's mIoU, or "" unless all three ran."""
  names = ("segmentation", "control", "consistency")
  metrics = [read_metrics(model_dir, name) if name in stages else None for name in names]
  if not all(m and isinstance(m.get("miou"), (int, float)) for m in metrics):
    return ""
  baseline, control, consistency = (m["miou"] for m in metrics)
  return (f"  mIoU side by side: baseline {baseline:.4f} | control {control:.4f} | consistency {consistency:.4f} "
          f"(consistency - control: {consistency - control:+.4f}; the two continue the baseline for the same steps on "
          "the same frames, so the difference is the consistency loss's)")


def _learned_intrinsics(model_dir, max_videos=10):
  """Lines with each video's learned K at its own size (--dm_intrinsics=per_video), or none."""
  path = os.path.join(model_dir, "depth_motion", teachers_lib.INTRINSICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    videos = json.load(f)["videos"]
  lines = [f"    learned K per video, at its own size (fx, fy, cx, cy): {path}"]
  for name, video in list(videos.items())[:max_videos]:
    height, width = video["native_size"]
    lines.append(f"      {name} ({width}x{height}): " + ", ".join(f"{v:.1f}" for v in video["native"]))
  if len(videos) > max_videos:
    lines.append(f"      ... and {len(videos) - max_videos} more")
  return lines


def summarize(model_dir, stages, export_dir=""):
  """A multi-line summary of the run in `model_dir` for `stages` (names), plus the SavedModel if exported."""
  lines = [f"Run summary: {os.path.abspath(model_dir)}"]
  for stage in stages:
    metrics = read_metrics(model_dir, stage)
    title = f"{stage} ({_TITLES[stage]})" if stage in _TITLES else stage
    if metrics is None:
      lines.append(f"  {title}: no metrics.json")
      continue
    parts = [label + " " + fmt.format(metrics[key]) for key, label, fmt in _HEADLINES.get(stage, ())
             if isinstance(metrics.get(key), (int, float))]
    lines.append(f"  {title} at step {metrics.get('step', '?')}: " + (", ".join(parts) or "(see metrics.json)"))
    lines.append(f"    metrics: {os.path.join(model_dir, stage, 'metrics.json')}")
    if stage == "depth_motion":
      lines += _learned_intrinsics(model_dir)
  comparison = _side_by_side(model_dir, stages)
  if comparison:
    lines.append(comparison)
  if export_dir:
    lines.append(f"  SavedModel (segmenter only): {os.path.abspath(export_dir)}")
  lines.append(f"  TensorBoard: tensorboard --logdir={os.path.abspath(model_dir)}")
  return "\n".join(lines)

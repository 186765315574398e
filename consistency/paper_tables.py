"""Pasad et al. 2020's experiments on the synthetic video: Table 1, Table 2 and Figure 2, as one resumable command.

    python -m consistency.paper_tables --output=/tmp/pasad_synthetic [--tables=1,2]
        [--fractions=0.005,0.01,0.02,0.04,1.0] [--seeds=0,1,2] [--geometries=ground_truth,learned]
        [--baseline_steps=200] [--baseline_max_steps=3200] [--continue_steps=150] [--teacher_steps=1000]
        [--pseudo_label] [--workers=1] [--dry_run] [--report_only]

Every run is `python -m consistency.train --flagfile=<--base_flagfile> --model_dir=<run dir> <overrides>` in a
subprocess (its log in <run dir>/train.log); a run whose stage metrics.json reached its last step is skipped, so an
interrupted command picks up where it stopped. --workers runs that many at a time (`grid.execute_all`), each once
the runs it starts from have finished. Every baseline starts before any continuation, so a command stopped early has
the baselines of every fraction (what the "4x fewer labels" test compares with). A finished continuation whose
baseline has changed since (e.g. allowed more rounds by a larger --baseline_max_steps) stops the command before any
run, naming it (`grid.check_needs`). Each invocation's wall-clock time is kept in <output>/invocations.json. Per label
fraction f and seed s (<output>/f<f>_s<s>/):
  baseline/   stage segmentation on the fraction's labels (the paper's supervised baseline), trained until its
              validation mIoU plateaus: --baseline_steps, then twice as many (resumed, the schedule stretched: a
              warm restart) and so on up to --baseline_max_steps, until the last quarter of a round moves mIoU by
              at most 0.01 (`grid.UntilPlateau`);
  control/    stage control: the baseline continued for --continue_steps on the same labels and pairs without the
              consistency loss (bitwise the consistency stage with weight 0:
              tests/consistency/test_consistency_stage.py);
  <geometry>/ the baseline continued for --continue_steps with the 4D consistency loss (weights 0.2/0.4/0.4),
              geometry ground_truth (the oracle: synthetic depth, poses, K) or learned (the depth_motion teachers
              trained once into <output>/teachers for --teacher_steps with --teacher_flagfile).
  pseudo_label/ and pseudo_label+<geometry>/ (with --pseudo_label): the baseline continued with weak-to-strong
              pseudo-labelling of the pair frames as single images (consistency/pseudo_label.py), alone (the
              control's data and forward passes plus that loss) and with the geometry's 4D consistency loss.
The consistency runs are compared with the control (same start, steps, labels, pairs and data order; both restart
the optimizer and its warm-up and cosine schedule from the baseline's weights): the gain is the loss's, not the extra
training's. Table 2 adds, at the lowest fraction and the first geometry, one continuation per weighting
(uniform, label prior, edge prior alone, cross-entropy alone, all four) next to Table 1's all three.

Every round of a baseline evaluates 8 times (its learning curve, kept in metrics_history.json); the report shows the
curve and whether it has plateaued.
Writes <output>/results.md (the tables: mean and standard deviation of validation mIoU over seeds, each
consistency run's gain on the control paired by seed with its 95 % interval (Student's t over the seeds:
`paired_stats`), and, where the grid has fraction f and 4 f, whether consistency at f reaches the baseline at 4 f),
results.json (every run's metrics and runtime) and figure2.png (relative per-class IoU gain of the consistency run
over the control against class frequency, lowest fraction, first geometry, mean over seeds).
"""

import dataclasses
import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from consistency import grid
from consistency import paired_stats

# Table 2's rows: the consistency weights (uniform, label prior, edge prior, cross-entropy) of each weighting.
WEIGHTINGS = {
    "uniform": (1.0, 0.0, 0.0, 0.0),
    "label_prior": (0.0, 1.0, 0.0, 0.0),
    "edge_prior": (0.0, 0.0, 1.0, 0.0),
    "all_three": (0.2, 0.4, 0.4, 0.0),
    "cross_entropy": (0.0, 0.0, 0.0, 1.0),
    "all_four": (0.2, 0.4, 0.4, 1.0),
}
_WEIGHT_FLAGS = ("consistency_uniform", "consistency_label_prior", "consistency_edge_prior",
                 "consistency_cross_entropy")
# A run "predicts" a class when the class covers more than this share of its validation predictions: the consistency
# loss's failure mode on few labels is a segmenter that predicts only a few (frequent) classes.
PREDICTED_SHARE = 0.01


def baseline(cell, base_flagfile, fraction, seed, first_steps, max_steps):
  """The supervised baseline of a (fraction, seed) cell: stage segmentation on the fraction's labels into
  <cell>/baseline, trained until its validation mIoU plateaus (`grid.UntilPlateau`)."""
  return grid.UntilPlateau(f"baseline f={fraction:g} seed={seed}", os.path.join(cell, "baseline"), "segmentation",
                           first_steps, max_steps, (f"--flagfile={base_flagfile}", "--stages=segmentation",
                                                    f"--label_fraction={fraction}", f"--seed={seed}"))


@dataclasses.dataclass(frozen=True)
class Plan:
  """What to run: the grid of the tables."""
  output: str
  base_flagfile: str
  teacher_flagfile: str
  tables: tuple = (1, 2)
  fractions: tuple = (0.005, 0.01, 0.02, 0.04, 1.0)
  seeds: tuple = (0, 1, 2)
  geometries: tuple = ("ground_truth", "learned")
  baseline_steps: int = 200
  baseline_max_steps: int = 3200
  continue_steps: int = 150
  teacher_steps: int = 1000
  pseudo_label: bool = False

  def __post_init__(self):
    unknown = sorted(set(self.geometries) - {"ground_truth", "learned"})
    if unknown or not self.geometries:
      raise ValueError(f"geometries must be a non-empty subset of ground_truth, learned. Received: {self.geometries}")
    if not self.fractions or any(not 0.0 < f <= 1.0 for f in self.fractions):
      raise ValueError(f"fractions must be in (0, 1]. Received: {self.fractions}")
    if not self.seeds:
      raise ValueError("seeds must not be empty.")
    unknown = sorted(set(self.tables) - {1, 2})
    if unknown or not self.tables:
      raise ValueError(f"tables must be a non-empty subset of 1, 2. Received: {self.tables}")

  @property
  def teacher_dir(self):
    return os.path.join(self.output, "teachers")

  def cell(self, fraction, seed):
    return os.path.join(self.output, f"f{fraction:g}_s{seed}")

  def teacher_run(self):
    return grid.Run("teachers", self.teacher_dir, "depth_motion", self.teacher_steps,
               (f"--flagfile={self.teacher_flagfile}", f"--train_steps={self.teacher_steps}"))

  def baseline_run(self, fraction, seed):
    return baseline(self.cell(fraction, seed), self.base_flagfile, fraction, seed, self.baseline_steps,
                    self.baseline_max_steps)

  def continuation(self, fraction, seed, variant, geometry="ground_truth", weighting="all_three", pseudo_label=False):
    """The baseline continued: variant "control" (no loss on unlabeled frames) or a consistency-stage run with the 4D
    consistency loss of `weighting` (None: without it) and, if `pseudo_label`, weak-to-strong pseudo-labelling."""
    baseline_dir = self.baseline_run(fraction, seed).model_dir
    needs = [baseline_dir]
    stage = "control" if variant == "control" else "consistency"
    overrides = [f"--flagfile={self.base_flagfile}", f"--stages={stage}", f"--label_fraction={fraction}",
                 f"--seed={seed}", f"--train_steps={self.continue_steps}",
                 f"--consistency_init_dir={os.path.join(baseline_dir, 'segmentation')}", f"--geometry={geometry}"]
    if variant != "control" and weighting is None:
      overrides.append("--consistency_weight=0")
    elif variant != "control":
      overrides += [f"--{flag}={weight}" for flag, weight in zip(_WEIGHT_FLAGS, WEIGHTINGS[weighting])]
      if geometry == "learned":
        overrides.append(f"--consistency_teacher_dir={os.path.join(self.teacher_dir, 'depth_motion')}")
        needs.append(self.teacher_dir)
    if pseudo_label:
      overrides.append("--pseudo_label_weight=1")
    return grid.Run(f"{variant} f={fraction:g} seed={seed}", os.path.join(self.cell(fraction, seed), variant),
               stage, self.continue_steps, tuple(overrides), tuple(needs))

  def variants(self):
    """{variant name: (geometry, weighting, pseudo_label)} of Table 1's consistency-stage runs in one (fraction, seed)
    cell: one per geometry and, with `pseudo_label`, pseudo-labelling alone (on the control's data) and with each
    geometry's consistency loss."""
    variants = {geometry: (geometry, "all_three", False) for geometry in self.geometries}
    if self.pseudo_label:
      variants["pseudo_label"] = ("ground_truth", None, True)
      variants.update({f"pseudo_label+{geometry}": (geometry, "all_three", True) for geometry in self.geometries})
    return variants

  def table2_variants(self):
    geometry = self.geometries[0]
    return {f"{geometry}_{weighting}": (geometry, weighting, False) for weighting in WEIGHTINGS
            if weighting != "all_three"}

  def run_for(self, fraction, seed, variant):
    """The run of `variant` ("baseline", "control", or a key of `variants` / `table2_variants`) in a cell."""
    if variant == "baseline":
      return self.baseline_run(fraction, seed)
    if variant == "control":
      return self.continuation(fraction, seed, "control")
    return self.continuation(fraction, seed, variant, *{**self.variants(), **self.table2_variants()}[variant])

  def runs(self):
    """Every run, in dependency order: the teachers, every baseline, then the continuations by fraction and seed."""
    runs = [self.teacher_run()] if "learned" in self.geometries else []
    runs += [self.baseline_run(fraction, seed) for fraction in sorted(self.fractions) for seed in self.seeds]
    lowest = min(self.fractions)
    for fraction in sorted(self.fractions):
      for seed in self.seeds:
        variants = ["control"]
        if 1 in self.tables or fraction == lowest:
          variants += list(self.variants())
        if 2 in self.tables and fraction == lowest:
          variants += list(self.table2_variants())
        runs += [self.run_for(fraction, seed, variant) for variant in variants]
    return runs


def collect(plan):
  """{fraction: {variant: [metrics of each seed, None where missing]}} over every run of the plan."""
  results = {}
  variants = ["baseline", "control", *plan.variants()]
  if 2 in plan.tables:
    variants += list(plan.table2_variants())
  for fraction in plan.fractions:
    results[fraction] = {}
    for variant in variants:
      runs = [plan.run_for(fraction, seed, variant) for seed in plan.seeds]
      results[fraction][variant] = [run.metrics() if os.path.exists(run.metrics_path()) else None for run in runs]
  return results


def _miou(metrics_list):
  return [m["miou"] if m else None for m in metrics_list]


def _gain_on_control(runs, variant):
  """Per seed, mIoU of `variant` minus the control's (None where either run is missing)."""
  return paired_stats.paired_differences(_miou(runs[variant]), _miou(runs["control"]))


def _format_gain(gains):
  interval = paired_stats.t_interval(gains)
  return "-" if interval is None else interval.format()


def table1(plan, results):
  """Markdown: mIoU mean ± std over seeds per fraction (rows) and run (columns), and each run's paired gain on the
  control (mean over seeds and its 95 % interval, Student's t)."""
  columns = ["baseline", "control", *plan.variants()]
  lines = ["| labels | " + " | ".join(columns) + " | " +
           " | ".join(f"{v} - control [95 % interval]" for v in plan.variants()) + " |",
           "|" + "---|" * (1 + len(columns) + len(plan.variants()))]
  for fraction in sorted(plan.fractions):
    cells = [grid.format_mean(*grid.mean_std(_miou(results[fraction][c]))) for c in columns]
    gains = [_format_gain(_gain_on_control(results[fraction], variant)) for variant in plan.variants()]
    frames = [m["labelled_frames"] for m in results[fraction]["baseline"] if m and "labelled_frames" in m]
    label = f"{fraction * 100:g} %" + (f" ({frames[0]} frames)" if frames else "")
    lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(gains) + " |")
  return "\n".join(lines)


def classes_predicted(metrics):
  """How many classes cover more than PREDICTED_SHARE of a run's validation predictions (None: no run, or metrics
  without per-class pixel counts)."""
  if not metrics:
    return None
  counts = [entry.get("predicted_pixels") for entry in metrics["per_class"].values()]
  if None in counts or sum(counts) == 0:
    return None
  threshold = PREDICTED_SHARE * sum(counts)
  return sum(count > threshold for count in counts)


def _by_seed(values, spec):
  """"v0 / v1 / ..." with `spec`, "-" for None."""
  return " / ".join("-" if value is None else format(value, spec) for value in values)


def per_seed(plan, results):
  """Markdown lines: per fraction, each variant's mIoU minus the control's per seed, and how many classes each
  continuation predicts per seed."""
  lines = []
  for fraction in sorted(plan.fractions):
    runs = results[fraction]
    gains = "; ".join(f"{v} {_by_seed(_gain_on_control(runs, v), '+.4f')}" for v in plan.variants())
    classes = "; ".join(f"{v} {_by_seed([classes_predicted(m) for m in runs[v]], 'd')}"
                        for v in ("control", *plan.variants()))
    lines.append(f"- {fraction * 100:g} %: minus the control {gains}. Classes predicted: {classes}")
  return lines


def learned_share(plan, results):
  """Markdown lines: per fraction, the learned geometry's mean gain on the control as a share of the oracle's."""
  if set(plan.geometries) != {"ground_truth", "learned"}:
    return []
  lines = []
  for fraction in sorted(plan.fractions):
    oracle = paired_stats.t_interval(_gain_on_control(results[fraction], "ground_truth"))
    learned = paired_stats.t_interval(_gain_on_control(results[fraction], "learned"))
    if oracle is None or learned is None:
      continue
    share = (f"{100 * learned.mean / oracle.mean:.0f} % of the oracle's" if oracle.mean > 0 else
             "no share: the oracle's gain is not above 0")
    lines.append(f"- {fraction * 100:g} %: learned {learned.mean:+.4f}, oracle {oracle.mean:+.4f}: {share}")
  return lines


def combined_vs_alone(plan, results):
  """Markdown lines: per fraction and geometry, pseudo-labels + consistency minus each of the two alone (paired by
  seed, mean [95 % interval]); [] without the pseudo-label columns."""
  if not plan.pseudo_label:
    return []
  lines = []
  for fraction in sorted(plan.fractions):
    for geometry in plan.geometries:
      combined = _miou(results[fraction][f"pseudo_label+{geometry}"])
      parts = []
      for alone in ("pseudo_label", geometry):
        gains = paired_stats.paired_differences(combined, _miou(results[fraction][alone]))
        parts.append(f"minus {alone} {_format_gain(gains)}")
      lines.append(f"- {fraction * 100:g} %, pseudo_label+{geometry}: " + "; ".join(parts))
  return lines


def baseline_curves(plan):
  """Markdown lines: each baseline's validation mIoU curve and whether it has plateaued."""
  lines = []
  for fraction in sorted(plan.fractions):
    for seed in plan.seeds:
      run = plan.baseline_run(fraction, seed)
      history = run.history()
      if not history:
        continue
      curve = " / ".join(f"{metrics['miou']:.3f}" for metrics in history.values())
      found = grid.plateau(history, run.steps)
      verdict = ("fewer than 2 evaluations in the last quarter" if found is None else
                 f"moves {found[0]:.3f} over the last quarter: {'plateaued' if found[1] else 'still learning'}")
      lines.append(f"- {fraction * 100:g} %, seed {seed}, {run.steps} steps: mIoU at steps "
                   f"{', '.join(map(str, history))}: {curve} ({verdict})")
  return lines


def table2(plan, results):
  """Markdown: at the lowest fraction, mIoU of each weighting (mean ± std over seeds), its gain on the control (mean
  [95 % interval], and per seed) and how many classes it predicts per seed."""
  fraction = min(plan.fractions)
  geometry = plan.geometries[0]
  rows = {"control (no consistency)": "control", **{w: f"{geometry}_{w}" for w in WEIGHTINGS}}
  rows["all_three"] = geometry
  lines = [f"| weighting ({geometry} geometry, {fraction * 100:g} % labels) | mIoU | gain on control "
           "[95 % interval] | gain per seed | classes predicted per seed |", "|---|---|---|---|---|"]
  for label, variant in rows.items():
    runs = results[fraction][variant]
    mious = grid.format_mean(*grid.mean_std(_miou(runs)))
    gains = _gain_on_control(results[fraction], variant)
    classes = _by_seed([classes_predicted(m) for m in runs], "d")
    lines.append(f"| {label} | {mious} | {_format_gain(gains)} | {_by_seed(gains, '+.4f')} | {classes} |")
  return "\n".join(lines)


def per_class_gain(plan, results):
  """[(class, frequency, relative IoU gain)] of the first geometry's run over the control, lowest fraction."""
  fraction = min(plan.fractions)
  variant = plan.geometries[0]
  rows = []
  pairs = [(m, c) for m, c in zip(results[fraction][variant], results[fraction]["control"]) if m and c]
  if not pairs:
    return rows
  for name in pairs[0][0]["per_class"]:
    gains, freqs = [], []
    for method, control in pairs:
      ours, theirs = method["per_class"][name], control["per_class"][name]
      freqs.append(theirs["frequency"])
      if ours["iou"] is not None and theirs["iou"] is not None and theirs["iou"] > 0:
        gains.append((ours["iou"] - theirs["iou"]) / theirs["iou"])
    if gains:
      rows.append((name, float(np.mean(freqs)), float(np.mean(gains))))
  return rows


def figure2(rows, path, title):
  """Scatter of relative per-class IoU gain against class frequency (log x), one labelled point per class."""
  import matplotlib  # imported here: only this figure needs it
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  if rows:
    names, freqs, gains = zip(*rows)
    ax.scatter(freqs, [100 * g for g in gains], color="tab:blue")
    for name, f, g in rows:
      ax.annotate(name, (f, 100 * g), fontsize=7, xytext=(3, 3), textcoords="offset points")
  ax.axhline(0.0, color="gray", linewidth=0.8)
  ax.set_xscale("log")
  ax.set_xlabel("class frequency (fraction of validation pixels)")
  ax.set_ylabel("relative IoU gain over the control (%)")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def report(plan, results, seconds, origin=None):
  """Writes results.md, results.json and figure2.png into plan.output; returns the markdown.

  Args:
    plan: the `Plan`.
    results: `collect(plan)`.
    seconds: wall-clock time of the runs this invocation made.
    origin: `grid.provenance(...)` of this invocation, or None.
  """
  made = [run for run in plan.runs() if run.finished()]
  run_minutes = sum(run.seconds() for run in made) / 60
  invoked = grid.invocations(plan.output)
  wall_minutes = sum(entry["seconds"] for entry in invoked) / 60
  lines = [f"# Pasad et al. 2020 on synthetic video ({len(plan.seeds)} seeds: {', '.join(map(str, plan.seeds))})", ""]
  if origin:
    lines += [f"Command: `{origin['command']}`; report written {origin['date']} at commit {origin['commit']}.", ""]
  lines += [f"Baselines trained until plateau (rounds of {plan.baseline_steps} steps doubled up to "
            f"{plan.baseline_max_steps}); control and consistency runs continue them for {plan.continue_steps} steps. "
            f"Validation mIoU, mean ± std over seeds (\"1 seed\" where only one seed was run, \"-\" where none). "
            f"Runtime: {len(made)} of {len(plan.runs())} runs made in {wall_minutes:.1f} min of wall-clock over "
            f"{len(invoked)} invocations (workers: "
            f"{', '.join(str(entry['workers']) for entry in invoked) or '-'}); the runs' own times sum to "
            f"{run_minutes:.1f} min; this invocation {seconds / 60:.1f} min.", ""]
  if "learned" in plan.geometries:
    teacher = plan.teacher_run()
    if os.path.exists(teacher.metrics_path()):
      m = {key: float("nan") for key in ("depth_abs_rel_median_scaled", "depth_abs_rel_constant_reference",
                                         "rotation_error_deg", "true_rotation_deg", "warp_epe_px", "zero_flow_epe_px")}
      m.update(teacher.metrics())
      lines += [f"Learned geometry: depth_motion teachers after {m.get('step')} steps (validation rooms): depth AbsRel "
                f"(median-scaled) {m['depth_abs_rel_median_scaled']:.3f} (a constant map "
                f"{m['depth_abs_rel_constant_reference']:.3f}), rotation error {m['rotation_error_deg']:.2f} deg (true "
                f"{m['true_rotation_deg']:.2f} deg), warp end-point error {m['warp_epe_px']:.2f} px (no motion "
                f"{m['zero_flow_epe_px']:.2f} px).", ""]
  curves = baseline_curves(plan)
  if curves:
    lines += [f"## Baselines (plateaued: validation mIoU within {grid.PLATEAU_TOLERANCE} over the last quarter)", "",
              *curves, ""]
  if 1 in plan.tables:
    lines += ["## Table 1", "", table1(plan, results), "",
              f"Per seed ({' / '.join(map(str, plan.seeds))}; a class is predicted where it covers more than "
              f"{PREDICTED_SHARE * 100:g} % of the validation pixels):", "", *per_seed(plan, results), ""]
    share = learned_share(plan, results)
    if share:
      lines += ["Learned geometry's gain as a share of the oracle's (means over seeds):", "", *share, ""]
    combined = combined_vs_alone(plan, results)
    if combined:
      lines += ["Pseudo-labels + 4D consistency against each alone (paired by seed):", "", *combined, ""]
    for variant in plan.variants():
      fewer = paired_stats.fewer_labels_test({f: _miou(results[f][variant]) for f in plan.fractions},
                                             {f: _miou(results[f]["baseline"]) for f in plan.fractions})
      if fewer:
        lines += [f"4x fewer labels ({variant} against the baseline, means over seeds):", ""]
        lines += [f"- {result.format()}" for result in fewer] + [""]
  if 2 in plan.tables:
    lines += ["## Table 2", "", table2(plan, results), ""]
  rows = per_class_gain(plan, results)
  title = (f"{plan.geometries[0]} geometry vs control, {min(plan.fractions) * 100:g} % labels, "
           f"mean of {len(plan.seeds)} seeds")
  figure2(rows, os.path.join(plan.output, "figure2.png"), title)
  lines += ["## Figure 2", "", "figure2.png: " + title + ". Relative gain = (IoU - control IoU) / control IoU per "
            "seed, averaged over the seeds where the control's IoU is above 0; classes without such a seed (never "
            "segmented by the control, or absent from validation) are left out.", "",
            "| class | frequency | relative IoU gain |", "|---|---|---|"]
  lines += [f"| {name} | {freq:.4f} | {100 * gain:+.1f} % |" for name, freq, gain in sorted(rows, key=lambda r: -r[1])]
  markdown = "\n".join(lines) + "\n"
  with open(os.path.join(plan.output, "results.md"), "w", encoding="utf-8") as f:
    f.write(markdown)
  serialisable = {f"{fraction:g}": runs for fraction, runs in results.items()}
  runtimes = {run.name: run.seconds() for run in made}
  with open(os.path.join(plan.output, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"plan": dataclasses.asdict(plan), "provenance": origin, "runtime_seconds": runtimes,
               "runs": serialisable}, f, indent=1)
  return markdown


def define_flags():
  flags.DEFINE_string("output", None, "Folder of every run and of the results.", required=True)
  flags.DEFINE_list("tables", ["1", "2"], "Which tables: 1 (fractions x runs), 2 (weightings at the lowest fraction).")
  flags.DEFINE_list("fractions", ["0.005", "0.01", "0.02", "0.04", "1.0"], "Label fractions of Table 1 (the "
                    "synthetic video's 1600 training frames give 8 labelled frames at 0.5 %).")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (label selection, initialisation, data order).")
  flags.DEFINE_list("geometries", ["ground_truth", "learned"], "Geometries of the consistency runs; the first one is "
                    "Table 2's and Figure 2's.")
  flags.DEFINE_integer("baseline_steps", 200, "Steps of each supervised baseline's first round (its cosine schedule "
                       "ends there); a baseline that has not plateaued goes on to twice as many steps, and so on.")
  flags.DEFINE_integer("baseline_max_steps", 3200, "Steps at which a baseline stops even if it has not plateaued.")
  flags.DEFINE_integer("continue_steps", 150, "Steps of each continuation (control and consistency runs).")
  flags.DEFINE_integer("teacher_steps", 1000, "Steps of the depth_motion teachers (learned geometry; the teacher "
                       "flagfile's own length, measured in docs/teachers.md).")
  flags.DEFINE_string("base_flagfile", "configs/synthetic_consistency.flags", "Flagfile of every segmentation and "
                      "consistency run (data, model, optimiser).")
  flags.DEFINE_string("teacher_flagfile", "configs/synthetic_depth_motion.flags", "Flagfile of the teachers' run.")
  flags.DEFINE_bool("pseudo_label", False, "Add Table 1's columns pseudo_label (weak-to-strong pseudo-labelling of "
                    "the unlabeled frames as single images, alone) and pseudo_label+<geometry> (with the 4D "
                    "consistency loss): the single-image baseline a user would pick instead.")
  flags.DEFINE_integer("workers", 1, "Runs made at a time, each with an equal share of the cores as its TensorFlow "
                       "threads (2 on a 2-core machine: 1.4x the runs per hour of 1, docs/results.md).", lower_bound=1)
  flags.DEFINE_bool("dry_run", False, "Only log the commands.")
  flags.DEFINE_bool("report_only", False, "Make no run: write the tables from the runs that exist (missing ones "
                    "are shown as -).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS  # noqa: N806
  for path in (FLAGS.base_flagfile, FLAGS.teacher_flagfile):
    if not os.path.exists(path):
      raise app.UsageError(f"Flagfile {path} not found (run from the repository root or pass its path).")
  plan = Plan(output=os.path.abspath(FLAGS.output), base_flagfile=os.path.abspath(FLAGS.base_flagfile),
              teacher_flagfile=os.path.abspath(FLAGS.teacher_flagfile), tables=tuple(int(t) for t in FLAGS.tables),
              fractions=tuple(float(f) for f in FLAGS.fractions), seeds=tuple(int(s) for s in FLAGS.seeds),
              geometries=tuple(FLAGS.geometries), baseline_steps=FLAGS.baseline_steps,
              baseline_max_steps=FLAGS.baseline_max_steps,
              continue_steps=FLAGS.continue_steps, teacher_steps=FLAGS.teacher_steps, pseudo_label=FLAGS.pseudo_label)
  logging.info("Into %s.", plan.output)
  try:
    grid.check_needs(plan.runs())
  except ValueError as e:
    sys.exit(f"paper_tables: {e}")
  start = time.time()
  try:
    seconds = grid.execute_all(plan.runs(), FLAGS.dry_run, FLAGS.report_only, FLAGS.workers)
  finally:  # an interrupted or failed invocation's time counts too
    if not (FLAGS.dry_run or FLAGS.report_only):
      grid.record_invocation(plan.output, time.time() - start, FLAGS.workers)
  if not FLAGS.dry_run:
    print(report(plan, collect(plan), seconds, grid.provenance("consistency.paper_tables", sys.argv)))
    print(f"Results: {os.path.join(plan.output, 'results.md')}, figure: {os.path.join(plan.output, 'figure2.png')}")


if __name__ == "__main__":
  define_flags()
  app.run(main)

"""Every Frame Counts' ablation on Pasad et al.'s benchmark protocol, as one resumable command.

    python -m consistency.efc_tables --output=/tmp/efc_grid [--baselines=/tmp/pasad_grid] [--fractions=0.01,0.05]
        [--seeds=0,1,2] [--baseline_steps=200] [--baseline_max_steps=3200] [--continue_steps=150] [--dry_run]
        [--report_only]

Every run is a `python -m consistency.train` subprocess (`grid.execute_all`: resumable, timed). Per label fraction f and
seed s (<output>/f<f>_s<s>/):
  baseline/  the supervised segmenter: stage segmentation with --base_flagfile (configs/synthetic_consistency.flags)
             until it plateaus, exactly consistency.paper_tables' baseline; taken from --baselines/f<f>_s<s>/baseline
             when that run has finished there (a paper_tables output), so the two grids share their baselines;
  <row>/     stage efc (--efc_flagfile: the same segmenter and data) for --continue_steps, its segmenter started from
             the baseline's (--warm_start), its flow branch from scratch; one row per line of the paper's ablation
             (`ROWS`): supervised_only (the control: the same continuation with every unsupervised term off),
             flow_only, flow_only_no_occlusion, joint_no_error_mask, joint.
Writes <output>/results.md: per row and fraction the validation mIoU (mean ± std over seeds) and its gain on
supervised_only paired by seed (95 % interval, Student's t), flow EPE (all, non-occluded), Fl and occlusion F1 (means
over seeds), joint's non-occluded EPE as a share of flow_only's (paired by seed); and the flow a user would pick
instead on the same validation pairs (zero flow, the ground truth, OpenCV's Farneback and DIS: consistency.flow_peers,
needs the `[bench]` extra), and results.json with every run's metrics and runtime.
"""

import dataclasses
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from consistency import grid
from consistency import paired_stats
from consistency import paper_tables
from consistency.harness import flags as flags_lib

# The ablation's rows: the efc flags of each, on top of --efc_flagfile.
ROWS = {
    "supervised_only": ("--efc_consistency_weight=0", "--efc_occlusion_weight=0", "--efc_smoothness_weight=0",
                        "--efc_photometric_weight=0", "--noefc_occlusion_mask", "--noefc_error_mask"),
    "flow_only": ("--efc_flow_only",),
    "flow_only_no_occlusion": ("--efc_flow_only", "--efc_occlusion_weight=0", "--noefc_occlusion_mask"),
    "joint_no_error_mask": ("--noefc_error_mask",),
    "joint": (),
}
# Rows whose segmenter is trained (flow-only rows train the flow branch alone: their mIoU is not a result).
SEGMENTING_ROWS = ("supervised_only", "joint_no_error_mask", "joint")
# Rows whose flow branch is trained (supervised_only's flow branch stays at its random start).
FLOW_ROWS = ("flow_only", "flow_only_no_occlusion", "joint_no_error_mask", "joint")
PEERS_FILE = "peers.json"
_FLOW_METRICS = (("flow_epe_all", "EPE all", "{:.3f}"), ("flow_epe_noc", "EPE noc", "{:.3f}"),
                 ("flow_fl_all", "Fl", "{:.3f}"), ("occlusion_f1", "occlusion F1", "{:.3f}"),
                 ("out_of_frame_f1", "out-of-frame F1", "{:.3f}"))


@dataclasses.dataclass(frozen=True)
class Plan:
  """The grid: fractions x seeds x (baseline + ROWS)."""
  output: str
  base_flagfile: str
  efc_flagfile: str
  baselines: str = ""
  fractions: tuple = (0.01, 0.05)
  seeds: tuple = (0, 1, 2)
  baseline_steps: int = 200
  baseline_max_steps: int = 3200
  continue_steps: int = 150

  def __post_init__(self):
    if not self.fractions or any(not 0.0 < f <= 1.0 for f in self.fractions):
      raise ValueError(f"fractions must be in (0, 1]. Received: {self.fractions}")
    if not self.seeds:
      raise ValueError("seeds must not be empty.")

  def cell(self, fraction, seed):
    return os.path.join(self.output, f"f{fraction:g}_s{seed}")

  def baseline_run(self, fraction, seed):
    """The cell's own baseline once one was started under --output; else paper_tables' under --baselines when it has
    finished there; else a new one under --output. (A choice made once stays: the rows' warm start never changes.)"""
    own = paper_tables.baseline(self.cell(fraction, seed), self.base_flagfile, fraction, seed, self.baseline_steps,
                                self.baseline_max_steps)
    if self.baselines and not os.path.exists(own.model_dir):
      shared = paper_tables.baseline(os.path.join(self.baselines, f"f{fraction:g}_s{seed}"), self.base_flagfile,
                                     fraction, seed, self.baseline_steps, self.baseline_max_steps)
      if shared.finished():
        return shared
    return own

  def row_run(self, fraction, seed, row):
    baseline = self.baseline_run(fraction, seed).model_dir
    overrides = (f"--flagfile={self.efc_flagfile}", f"--label_fraction={fraction}", f"--seed={seed}",
                 f"--train_steps={self.continue_steps}",
                 f"--warm_start=segmenter={os.path.join(baseline, 'segmentation')}", *ROWS[row])
    return grid.Run(f"{row} f={fraction:g} seed={seed}", os.path.join(self.cell(fraction, seed), row), "efc",
                    self.continue_steps, overrides, (baseline,))

  def runs(self):
    """Every baseline first, then the rows by fraction and seed."""
    runs = [self.baseline_run(f, s) for f in sorted(self.fractions) for s in self.seeds]
    return runs + [self.row_run(f, s, row) for f in sorted(self.fractions) for s in self.seeds for row in ROWS]


def collect(plan):
  """{fraction: {row or "baseline": [metrics of each seed, None where missing]}}."""
  results = {}
  for fraction in plan.fractions:
    runs = {"baseline": [plan.baseline_run(fraction, seed) for seed in plan.seeds]}
    runs.update({row: [plan.row_run(fraction, seed, row) for seed in plan.seeds] for row in ROWS})
    results[fraction] = {name: [run.metrics() if run.finished() else None for run in seeds]
                         for name, seeds in runs.items()}
  return results


def _values(metrics_list, key):
  return [m.get(key) if m else None for m in metrics_list]


def _mean(values):
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


def table(plan, results):
  """Markdown: one line per fraction and row."""
  header = ["labels", "row", "mIoU", "mIoU - supervised_only [95 % interval]"] + [label for _, label, _ in
                                                                                 _FLOW_METRICS]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for fraction in sorted(plan.fractions):
    runs = results[fraction]
    for row in ROWS:
      segments = row in SEGMENTING_ROWS
      miou = grid.format_mean(*grid.mean_std(_values(runs[row], "miou"))) if segments else "(not trained)"
      gain = "-"
      if row in SEGMENTING_ROWS and row != "supervised_only":
        interval = paired_stats.t_interval(paired_stats.paired_differences(_values(runs[row], "miou"),
                                                                           _values(runs["supervised_only"], "miou")))
        gain = "-" if interval is None else interval.format()
      cells = []
      for key, _, fmt in _FLOW_METRICS:
        mean = _mean(_values(runs[row], key)) if row in FLOW_ROWS else None
        cells.append("-" if mean is None else fmt.format(mean))
      lines.append(f"| {fraction * 100:g} % | {row} | {miou} | {gain} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def joint_vs_flow_only(plan, results):
  """Markdown lines: joint's non-occluded EPE over flow_only's, per fraction (paired by seed, mean)."""
  lines = []
  for fraction in sorted(plan.fractions):
    ratios = [j / f for j, f in zip(_values(results[fraction]["joint"], "flow_epe_noc"),
                                    _values(results[fraction]["flow_only"], "flow_epe_noc"))
              if j is not None and f]
    if ratios:
      lines.append(f"- {fraction * 100:g} %: joint / flow_only non-occluded EPE {np.mean(ratios):.3f} "
                   f"(per seed {', '.join(f'{r:.3f}' for r in ratios)}; target <= 0.85)")
  return lines


def peers(plan):
  """{row: flow metrics} of zero flow, the ground truth, Farneback and DIS on the efc runs' validation pairs (cached in
  peers.json),
  read with a finished row's own resolved flags (its flags.txt), so the pairs are exactly the ones its flow was scored
  on; None while no row has finished."""
  path = os.path.join(plan.output, PEERS_FILE)
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  finished = [run for run in plan.runs() if run.stage == "efc" and run.finished()]
  if not finished:
    return None
  from consistency import flow_peers  # pylint: disable=import-outside-toplevel  (TensorFlow and OpenCV)
  from consistency.stages import efc as efc_stage  # pylint: disable=import-outside-toplevel
  config = flags_lib.read_run_config(finished[0].model_dir)
  scored = flow_peers.score(efc_stage.EfcStage(config).eval_dataset(),
                            rows=("zero flow", "ground truth", "Farneback", "DIS"))
  with open(path, "w", encoding="utf-8") as f:
    json.dump(scored, f, indent=1)
  return scored


def report(plan, results, seconds, origin=None, peer_results=None):
  """Writes results.md and results.json into plan.output; returns the markdown."""
  made = [run for run in plan.runs() if run.finished()]
  minutes = sum(run.seconds() for run in made) / 60
  lines = [f"# Every Frame Counts on the synthetic video ({len(plan.seeds)} seeds: {', '.join(map(str, plan.seeds))})",
           ""]
  if origin:
    lines += [f"Command: `{origin['command']}`; report written {origin['date']} at commit {origin['commit']}.", ""]
  lines += [f"Baselines trained until plateau ({plan.baseline_steps} to {plan.baseline_max_steps} steps; shared with "
            f"consistency.paper_tables where --baselines has them); "
            f"every row continues the baseline's segmenter with the efc stage for {plan.continue_steps} steps. "
            f"Validation mIoU mean ± std over seeds, on the efc stage's evaluation frames (the first frames of its "
            f"validation pairs: not the baselines' evaluation set, so compare rows with each other); flow metrics are "
            f"means over seeds at the validation pairs' gap. "
            f"Runtime: {len(made)} of {len(plan.runs())} runs made, {minutes:.1f} min in all (the runs' wall-clock "
            f"times, shared baselines included); this invocation {seconds / 60:.1f} min.", "",
            table(plan, results), ""]
  ratios = joint_vs_flow_only(plan, results)
  if ratios:
    lines += ["Joint against flow-only (non-occluded EPE):", "", *ratios, ""]
  if peer_results:
    lines += ["Flow a user would pick instead, on the same validation pairs (consistency.flow_peers; occlusion F1 of "
              "EFC's out-of-frame rule applied to that flow: the ground truth's is the most the rule can reach):", ""]
    lines += [f"- {name}: EPE all {m['flow_epe_all']:.3f}, non-occluded {m['flow_epe_noc']:.3f}, Fl "
              f"{m['flow_fl_all']:.3f}, occlusion F1 {m.get('out_of_frame_f1', float('nan')):.3f}"
              for name, m in peer_results.items()] + [""]
  markdown = "\n".join(lines) + "\n"
  with open(os.path.join(plan.output, "results.md"), "w", encoding="utf-8") as f:
    f.write(markdown)
  with open(os.path.join(plan.output, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"plan": dataclasses.asdict(plan), "provenance": origin, "peers": peer_results,
               "runtime_seconds": {run.name: run.seconds() for run in made},
               "runs": {f"{fraction:g}": runs for fraction, runs in results.items()}}, f, indent=1)
  return markdown


def define_flags():
  flags.DEFINE_string("output", None, "Folder of every run and of the results.", required=True)
  flags.DEFINE_string("baselines", "", "A consistency.paper_tables output whose finished baselines (same flags) are "
                      "reused instead of trained again.")
  flags.DEFINE_list("fractions", ["0.01", "0.05"], "Label fractions (of the synthetic video's 1600 training frames).")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (label selection, initialisation, data order).")
  flags.DEFINE_integer("baseline_steps", 200, "Steps of each baseline's first round (paper_tables' default).")
  flags.DEFINE_integer("baseline_max_steps", 3200, "Steps at which a baseline stops even if it has not plateaued.")
  flags.DEFINE_integer("continue_steps", 150, "Steps of each efc continuation.")
  flags.DEFINE_string("base_flagfile", "configs/synthetic_consistency.flags", "Flagfile of the baselines.")
  flags.DEFINE_string("efc_flagfile", "configs/synthetic_efc_protocol.flags", "Flagfile of the efc runs.")
  flags.DEFINE_bool("peers", True, "Score zero flow, Farneback and DIS on the same pairs (needs OpenCV: the "
                    "[bench] extra).")
  flags.DEFINE_bool("dry_run", False, "Only log the commands.")
  flags.DEFINE_bool("report_only", False, "Make no run: write the table from the runs that exist.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  options = flags.FLAGS
  for path in (options.base_flagfile, options.efc_flagfile):
    if not os.path.exists(path):
      raise app.UsageError(f"Flagfile {path} not found (run from the repository root or pass its path).")
  plan = Plan(output=os.path.abspath(options.output), base_flagfile=os.path.abspath(options.base_flagfile),
              efc_flagfile=os.path.abspath(options.efc_flagfile),
              baselines=os.path.abspath(options.baselines) if options.baselines else "",
              fractions=tuple(float(f) for f in options.fractions), seeds=tuple(int(s) for s in options.seeds),
              baseline_steps=options.baseline_steps, baseline_max_steps=options.baseline_max_steps,
              continue_steps=options.continue_steps)
  logging.info("Into %s.", plan.output)
  try:
    grid.check_needs(plan.runs())
  except ValueError as e:
    sys.exit(f"efc_tables: {e}")
  seconds = grid.execute_all(plan.runs(), options.dry_run, options.report_only)
  if not options.dry_run:
    os.makedirs(plan.output, exist_ok=True)
    peer_results = None
    if options.peers:
      try:
        peer_results = peers(plan)
      except ImportError as e:
        logging.warning("No classical flow rows (%s): pip install -e '.[bench]' for OpenCV.", e)
    print(report(plan, collect(plan), seconds, grid.provenance("consistency.efc_tables", sys.argv), peer_results))


if __name__ == "__main__":
  define_flags()
  app.run(main)

"""The paper-tables driver: its plan of runs, resuming, and the tables and figure it writes from runs' metrics."""

import json
import os

import pytest

from consistency import grid
from consistency import paper_tables
from tests.consistency import runs


def _plan(tmp_path, **kwargs):
  settings = dict(output=str(tmp_path), base_flagfile="base.flags", teacher_flagfile="dm.flags",
                  fractions=(0.01, 1.0), seeds=(0, 1), geometries=("ground_truth", "learned"), baseline_steps=30,
                  continue_steps=20, teacher_steps=10)
  settings.update(kwargs)
  return paper_tables.Plan(**settings)


def _write_metrics(run, miou, per_class, step=None):
  runs.write_metrics(run, step, miou=miou, per_class=per_class)


def test_plan_orders_runs_and_sets_each_runs_flags(tmp_path):
  plan = _plan(tmp_path)
  runs = plan.runs()
  names = [run.name for run in runs]
  assert names[0] == "teachers"
  # Table 1 at both fractions and seeds (baseline, control, two geometries); Table 2's five other weightings at the
  # lowest fraction only.
  assert len(runs) == 1 + 2 * 2 * 4 + 2 * 5
  # Every baseline comes first (the 4x test needs them all); each continuation starts from its own.
  stages = [run.stage for run in runs[1:]]
  assert stages[:4] == ["segmentation"] * 4 and "segmentation" not in stages[4:]
  for run in runs[5:]:
    baseline = os.path.join(os.path.dirname(run.model_dir), "baseline", "segmentation")
    assert f"--consistency_init_dir={baseline}" in run.overrides
  control = plan.run_for(0.01, 1, "control")
  assert control.stage == "control" and control.metrics_path().endswith("control/control/metrics.json")
  assert "--stages=control" in control.overrides and "--seed=1" in control.overrides
  learned = plan.run_for(0.01, 0, "learned")
  assert f"--consistency_teacher_dir={tmp_path}/teachers/depth_motion" in learned.overrides
  # Each continuation waits for its baseline and, with the learned geometry, for the teachers.
  assert learned.needs == (f"{tmp_path}/f0.01_s0/baseline", f"{tmp_path}/teachers")
  assert control.needs == (f"{tmp_path}/f0.01_s1/baseline",)
  uniform = plan.run_for(0.01, 0, "ground_truth_uniform")
  assert {"--consistency_uniform=1.0", "--consistency_label_prior=0.0", "--consistency_edge_prior=0.0",
          "--consistency_cross_entropy=0.0", "--geometry=ground_truth"} <= set(uniform.overrides)


def test_plan_without_learned_geometry_has_no_teachers(tmp_path):
  plan = _plan(tmp_path, geometries=("ground_truth",), tables=(1,))
  assert all(run.name != "teachers" for run in plan.runs())
  assert len(plan.runs()) == 2 * 2 * 3


@pytest.mark.parametrize("bad", [dict(geometries=("lidar",)), dict(fractions=(0.0,)), dict(seeds=()),
                                 dict(tables=(3,))])
def test_plan_rejects_bad_settings(tmp_path, bad):
  with pytest.raises(ValueError):
    _plan(tmp_path, **bad)


def test_finished_runs_are_skipped_and_unfinished_ones_are_not(tmp_path):
  plan = _plan(tmp_path)
  run = plan.run_for(0.01, 0, "control")
  assert not run.finished()
  _write_metrics(run, 0.1, {}, step=10)  # an interrupted run evaluated before its last step
  assert not run.finished()
  _write_metrics(run, 0.1, {})
  assert run.finished()
  assert run.execute() == 0.0


def test_report_tables_and_figure_from_metrics(tmp_path):
  plan = _plan(tmp_path, geometries=("ground_truth",))
  classes = {"wall": 0.5, "chair": 0.01}
  for fraction in plan.fractions:
    for seed in plan.seeds:
      for variant, miou in (("baseline", 0.10), ("control", 0.20), ("ground_truth", 0.30 + 0.02 * seed)):
        per_class = {name: {"iou": miou * (2.0 if name == "chair" and variant == "ground_truth" else 1.0),
                            "frequency": freq} for name, freq in classes.items()}
        _write_metrics(plan.run_for(fraction, seed, variant), miou, per_class)
  results = paper_tables.collect(plan)
  markdown = paper_tables.report(plan, results, seconds=60.0)
  # Table 1: means over the two seeds, and the paired gain on the control: 0.10 and 0.12, so 0.11 with a sample
  # standard deviation of 0.01414 and, with t(1) = 12.706, a 95 % interval of 0.11 +- 0.1271.
  assert "| 1 % | 0.1000 ± 0.0000 | 0.2000 ± 0.0000 | 0.3100 ± 0.0100 | +0.1100 [-0.0171, +0.2371] |" in markdown
  # Table 2 rows whose runs are missing are shown as "-", not invented.
  assert "| uniform | - | - | - / - | - / - |" in markdown
  # Figure 2 rows: wall gains (0.31 - 0.2) / 0.2 = +55 %, chair (0.62 - 0.2) / 0.2 = +210 %.
  assert "| wall | 0.5000 | +55.0 % |" in markdown and "| chair | 0.0100 | +210.0 % |" in markdown
  assert os.path.getsize(tmp_path / "figure2.png") > 1000
  with open(tmp_path / "results.json", encoding="utf-8") as f:
    assert json.load(f)["runs"]["0.01"]["control"][0]["miou"] == 0.2
  # A run made for one seed only is marked as such.
  os.remove(plan.run_for(0.01, 1, "ground_truth").metrics_path())
  markdown = paper_tables.report(plan, paper_tables.collect(plan), seconds=0.0)
  assert "| 1 % | 0.1000 ± 0.0000 | 0.2000 ± 0.0000 | 0.3000 (1 seed) | +0.1000 (1 seed) |" in markdown


def test_report_answers_the_four_times_fewer_labels_question(tmp_path):
  plan = _plan(tmp_path, geometries=("ground_truth",), tables=(1,), fractions=(0.01, 0.04))
  for seed in plan.seeds:
    for fraction, variant, miou in ((0.01, "baseline", 0.10), (0.01, "control", 0.11), (0.01, "ground_truth", 0.25),
                                    (0.04, "baseline", 0.20), (0.04, "control", 0.21), (0.04, "ground_truth", 0.22)):
      _write_metrics(plan.run_for(fraction, seed, variant), miou, {"wall": {"iou": miou, "frequency": 1.0}})
  markdown = paper_tables.report(plan, paper_tables.collect(plan), seconds=0.0)
  assert ("- 1 % labels with consistency: 0.2500 mIoU; the baseline with 4 %: 0.2000 -> yes (+0.0500)" in
          markdown)
  assert "0.04 % labels" not in markdown and "4 % labels with consistency" not in markdown


def test_report_lists_each_seeds_gain_and_how_many_classes_each_run_predicts(tmp_path):
  plan = _plan(tmp_path, geometries=("ground_truth",), tables=(1, 2), fractions=(0.01,), seeds=(0, 1))
  # Predicted pixels per class: the control spreads them over three classes; the consistency run of seed 0 puts
  # 995 of 1000 on wall (chair's 5 are 0.5 %, under the 1 % that counts), seed 1's is the control's.
  predicted = {"control": (600, 300, 100), "ground_truth": (995, 0, 5)}
  for seed, (control, ours) in enumerate(((0.20, 0.15), (0.30, 0.32))):
    for variant, miou in (("baseline", 0.1), ("control", control), ("ground_truth", ours)):
      pixels = predicted["control" if variant != "ground_truth" or seed == 1 else variant]
      per_class = {name: {"iou": miou, "frequency": 0.3, "predicted_pixels": count}
                   for name, count in zip(("wall", "floor", "chair"), pixels)}
      _write_metrics(plan.run_for(0.01, seed, variant), miou, per_class)
  markdown = paper_tables.report(plan, paper_tables.collect(plan), seconds=0.0)
  assert ("- 1 %: minus the control ground_truth -0.0500 / +0.0200. Classes predicted: control 3 / 3; "
          "ground_truth 1 / 3") in markdown
  # Table 2 lists the same per seed for every weighting (all three is Table 1's run).
  assert "| all_three | 0.2350 ± 0.0850 | -0.0150 [-0.4597, +0.4297] | -0.0500 / +0.0200 | 1 / 3 |" in markdown
  # Metrics without pixel counts (older runs) and missing runs are shown as "-".
  assert paper_tables.classes_predicted({"per_class": {"wall": {"iou": 0.1}}}) is None
  assert paper_tables.classes_predicted(None) is None


def test_runs_are_scored_from_their_confusion_matrix(tmp_path):
  # A run written before mIoU left out classes that are only predicted: 4 pixels of class 0, 2 of them predicted as
  # class 1 (never labelled). Its stored 0.25 averaged class 0's IoU 2 / 4 with class 1's 0; read back, it is scored
  # by the current definition: class 0 alone, 0.5.
  plan = _plan(tmp_path, geometries=("ground_truth",), tables=(1,), fractions=(0.01,), seeds=(0,))
  run = plan.run_for(0.01, 0, "control")
  _write_metrics(run, 0.25, {})
  with open(run.metrics_path(), encoding="utf-8") as f:
    metrics = json.load(f)
  metrics["confusion_matrix"] = [[2, 2], [0, 0]]
  with open(run.metrics_path(), "w", encoding="utf-8") as f:
    json.dump(metrics, f)
  assert run.metrics()["miou"] == 0.5
  assert grid.rescored({"miou": 0.3}) == {"miou": 0.3}


def test_report_shows_each_baselines_curve_and_whether_it_plateaued(tmp_path):
  plan = _plan(tmp_path, geometries=("ground_truth",), tables=(1,), fractions=(0.01,), seeds=(0, 1, 2),
               baseline_steps=40, baseline_max_steps=80)
  first = plan.baseline_run(0.01, 0).round(40).overrides
  assert "--train_steps=40" in first and "--eval_every=5" in first  # 8 evaluations per round
  # Seed 0 plateaus in its first round (the last quarter of 40 steps holds the evaluations at 30, 35 and 40); seed 1
  # is still learning at step 40 and plateaus at 80; seed 2 has not plateaued at the 80-step limit.
  curves = {0: {10: 0.10, 20: 0.20, 30: 0.250, 35: 0.255, 40: 0.258},
            1: {10: 0.10, 20: 0.15, 30: 0.20, 40: 0.25, 60: 0.300, 70: 0.305, 80: 0.308},
            2: {10: 0.10, 20: 0.15, 30: 0.20, 40: 0.25, 60: 0.30, 70: 0.35, 80: 0.40}}
  for seed, curve in curves.items():
    run = plan.baseline_run(0.01, seed)
    runs.write_history(run, curve)
    _write_metrics(run.round(max(curve)), curve[max(curve)], {})
  assert [plan.baseline_run(0.01, seed).steps for seed in curves] == [40, 80, 80]
  assert all(plan.baseline_run(0.01, seed).finished() for seed in curves)
  markdown = paper_tables.report(plan, paper_tables.collect(plan), seconds=0.0)
  assert ("- 1 %, seed 0, 40 steps: mIoU at steps 10, 20, 30, 35, 40: 0.100 / 0.200 / 0.250 / 0.255 / 0.258 (moves "
          "0.008 over the last quarter: plateaued)") in markdown
  assert ("- 1 %, seed 1, 80 steps: mIoU at steps 10, 20, 30, 40, 60, 70, 80: 0.100 / 0.150 / 0.200 / 0.250 / 0.300 "
          "/ 0.305 / 0.308 (moves 0.008 over the last quarter: plateaued)") in markdown
  assert "seed 2, 80 steps: mIoU at steps 10, 20, 30, 40, 60, 70, 80: 0.100 / 0.150 / 0.200 / 0.250 / 0.300 / 0.350 " \
      "/ 0.400 (moves 0.100 over the last quarter: still learning)" in markdown
  assert paper_tables.collect(plan)[0.01]["baseline"][1]["miou"] == 0.308  # the last round's metrics


def test_report_states_its_origin_runtime_frames_and_the_learned_share(tmp_path):
  plan = _plan(tmp_path, tables=(1,), fractions=(0.01,))
  for seed in plan.seeds:
    for variant, miou in (("baseline", 0.10), ("control", 0.20), ("ground_truth", 0.24), ("learned", 0.23)):
      run = plan.run_for(0.01, seed, variant)
      _write_metrics(run, miou, {"wall": {"iou": miou, "frequency": 1.0}})
      if variant == "baseline":
        with open(run.metrics_path(), "w", encoding="utf-8") as f:
          json.dump({"step": run.steps, "miou": miou, "per_class": {}, "labelled_frames": 16}, f)
      with open(os.path.join(run.model_dir, grid.RUNTIME_FILE), "w", encoding="utf-8") as f:
        json.dump({"seconds": 30.0}, f)
  grid.record_invocation(str(tmp_path), 0.0, 2)  # 0 s: not recorded
  grid.record_invocation(str(tmp_path), 60.0, 1)
  grid.record_invocation(str(tmp_path), 90.0, 2)
  origin = {"command": "python -m consistency.paper_tables --output=X", "date": "2026-12-06 21:00 UTC",
            "commit": "abc1234"}
  markdown = paper_tables.report(plan, paper_tables.collect(plan), seconds=90.0, origin=origin)
  assert "Command: `python -m consistency.paper_tables --output=X`; report written 2026-12-06 21:00 UTC at commit " \
      "abc1234." in markdown
  # 8 runs of 30 s made (the teachers have not run) by two invocations of 1 and 1.5 min.
  assert "8 of 9 runs made in 2.5 min of wall-clock over 2 invocations (workers: 1, 2); the runs' own times sum to " \
      "4.0 min; this invocation 1.5 min" in markdown
  assert "| 1 % (16 frames) | 0.1000 ± 0.0000 |" in markdown
  # Gains on the control: oracle +0.04, learned +0.03: 75 %.
  assert "- 1 %: learned +0.0300, oracle +0.0400: 75 % of the oracle's" in markdown
  with open(tmp_path / "results.json", encoding="utf-8") as f:
    saved = json.load(f)
  assert saved["provenance"] == origin and saved["runtime_seconds"]["control f=0.01 seed=0"] == 30.0


def test_provenance_names_the_command_and_commit():
  origin = grid.provenance("consistency.paper_tables", ["paper_tables.py", "--output=/tmp/x", "--seeds=0"])
  assert origin["command"] == "python -m consistency.paper_tables --output=/tmp/x --seeds=0"
  assert origin["commit"] and origin["date"]


def test_pseudo_label_columns_run_alone_and_combined_and_are_compared_with_both(tmp_path):
  plan = _plan(tmp_path, geometries=("ground_truth",), tables=(1,), fractions=(0.01,), pseudo_label=True)
  assert list(plan.variants()) == ["ground_truth", "pseudo_label", "pseudo_label+ground_truth"]
  alone = plan.run_for(0.01, 0, "pseudo_label")
  # Alone: the control's data (same geometry flag), no 4D consistency loss, the pseudo-label loss on.
  assert alone.stage == "consistency"
  assert {"--consistency_weight=0", "--pseudo_label_weight=1", "--geometry=ground_truth"} <= set(alone.overrides)
  assert not any(o.startswith("--consistency_uniform") for o in alone.overrides)
  combined = plan.run_for(0.01, 0, "pseudo_label+ground_truth")
  assert {"--pseudo_label_weight=1", "--consistency_uniform=0.2"} <= set(combined.overrides)
  assert not any(o.startswith("--consistency_weight") for o in combined.overrides)
  assert "--pseudo_label_weight=1" not in plan.run_for(0.01, 0, "ground_truth").overrides
  assert len(plan.runs()) == 2 * (1 + 1 + 3)
  for seed in plan.seeds:
    for variant, miou in (("baseline", 0.10), ("control", 0.20), ("ground_truth", 0.22), ("pseudo_label", 0.25),
                          ("pseudo_label+ground_truth", 0.26 + 0.02 * seed)):
      _write_metrics(plan.run_for(0.01, seed, variant), miou, {"wall": {"iou": miou, "frequency": 1.0}})
  markdown = paper_tables.report(plan, paper_tables.collect(plan), seconds=0.0)
  # Combined minus alone per seed: 0.01 and 0.03 (mean 0.02, interval 0.02 +- 12.706 x 0.01414 / sqrt(2)); minus the
  # consistency loss alone: 0.04 and 0.06.
  assert ("- 1 %, pseudo_label+ground_truth: minus pseudo_label +0.0200 [-0.1071, +0.1471]; minus ground_truth "
          "+0.0500 [-0.0771, +0.1771]") in markdown
  assert "4x fewer labels (pseudo_label against the baseline" not in markdown  # no 4 % baseline in this grid

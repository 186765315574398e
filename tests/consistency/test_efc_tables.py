"""The EFC grid driver: its plan (shared baselines, each row's flags) and the table it writes from made-up metrics."""

import json
import os

from consistency import efc_tables
from tests.consistency import runs


def _plan(tmp_path, **kwargs):
  settings = dict(output=str(tmp_path / "efc"), base_flagfile="base.flags", efc_flagfile="efc.flags",
                  fractions=(0.01,), seeds=(0, 1), baseline_steps=30, continue_steps=20)
  settings.update(kwargs)
  return efc_tables.Plan(**settings)


def _write(run, **metrics):
  runs.write_metrics(run, **metrics)


def test_rows_continue_the_baseline_and_reuse_finished_shared_baselines(tmp_path):
  plan = _plan(tmp_path)
  runs = plan.runs()
  assert [run.stage for run in runs] == ["segmentation"] * 2 + ["efc"] * 2 * len(efc_tables.ROWS)
  joint = plan.row_run(0.01, 1, "joint")
  assert f"--warm_start=segmenter={tmp_path}/efc/f0.01_s1/baseline/segmentation" in joint.overrides
  assert {"--seed=1", "--label_fraction=0.01", "--train_steps=20", "--flagfile=efc.flags"} <= set(joint.overrides)
  assert "--efc_flow_only" in plan.row_run(0.01, 0, "flow_only").overrides
  supervised = plan.row_run(0.01, 0, "supervised_only").overrides
  assert "--efc_consistency_weight=0" in supervised and "--noefc_error_mask" in supervised
  # A paper_tables grid's finished baseline is used; an unfinished one is not.
  shared = _plan(tmp_path, baselines=str(tmp_path / "pasad"))
  _write(efc_tables.Plan.baseline_run(_plan(tmp_path, output=str(tmp_path / "pasad")), 0.01, 0), miou=0.1)
  assert shared.baseline_run(0.01, 0).model_dir == f"{tmp_path}/pasad/f0.01_s0/baseline"
  assert shared.baseline_run(0.01, 1).model_dir == f"{tmp_path}/efc/f0.01_s1/baseline"
  assert f"--warm_start=segmenter={tmp_path}/pasad/f0.01_s0/baseline/segmentation" in \
      shared.row_run(0.01, 0, "joint").overrides
  # Once a cell has its own baseline (started while the shared one was not finished), it stays the cell's.
  os.makedirs(f"{tmp_path}/efc/f0.01_s0/baseline")
  assert shared.baseline_run(0.01, 0).model_dir == f"{tmp_path}/efc/f0.01_s0/baseline"


def test_report_pairs_gains_by_seed_and_compares_joint_with_flow_only(tmp_path):
  plan = _plan(tmp_path)
  flow = dict(flow_epe_all=4.0, flow_fl_all=0.5, occlusion_f1=0.2)
  for seed in plan.seeds:
    _write(plan.baseline_run(0.01, seed), miou=0.1)
    _write(plan.row_run(0.01, seed, "supervised_only"), miou=0.20, flow_epe_noc=9.0, **flow)
    _write(plan.row_run(0.01, seed, "joint"), miou=0.22 + 0.02 * seed, flow_epe_noc=3.0 + seed, **flow)
    _write(plan.row_run(0.01, seed, "flow_only"), miou=0.1, flow_epe_noc=4.0, **flow)
  markdown = efc_tables.report(plan, efc_tables.collect(plan), seconds=0.0,
                               peer_results={"DIS": dict(flow_epe_all=1.0, flow_epe_noc=0.5, flow_fl_all=0.1)})
  # Gains on supervised_only 0.02 and 0.04: mean 0.03, sd 0.01414, t(1) = 12.706 -> +-0.1271.
  assert "| 1 % | joint | 0.2300 ± 0.0100 | +0.0300 [-0.0971, +0.1571] | 4.000 | 3.500 | 0.500 | 0.200 |" in markdown
  # The flow-only rows' segmenter is not a result; supervised_only's flow branch is untrained: no flow metrics.
  assert "| 1 % | flow_only | (not trained) | - | 4.000 | 4.000 |" in markdown
  assert "| 1 % | supervised_only | 0.2000 ± 0.0000 | - | - | - | - | - |" in markdown
  assert "| 1 % | joint_no_error_mask | - | - | - | - | - | - |" in markdown  # missing runs are "-"
  assert "joint / flow_only non-occluded EPE 0.875 (per seed 0.750, 1.000; target <= 0.85)" in markdown
  assert "- DIS: EPE all 1.000, non-occluded 0.500, Fl 0.100" in markdown

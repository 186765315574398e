"""Every flagfile in configs/ parses into a valid TrainConfig, names registered stages, and has the header.

A flagfile whose `# Command:` runs another module than consistency.train (e.g. consistency.kitti_flow_predict) is
parsed with that module's flags (its `define_flags`, on a copy of the flags) instead.
"""

import copy
import glob
import importlib
import os
import re

import pytest
from absl import flags

from consistency import stages  # noqa: F401  (registers the stages)
from consistency.harness import flags as flags_lib
from consistency.harness import stage as stage_lib

ROOT = os.path.join(os.path.dirname(__file__), "..")
FLAGFILES = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.flags"),
                                                                recursive=True))
TRAIN_MODULE = "consistency.train"


@pytest.mark.parametrize("path", FLAGFILES)
def test_flagfile_parses_and_documents_itself(path, monkeypatch):
  monkeypatch.chdir(ROOT)  # nested --flagfile paths are relative to the repository root
  with open(path, encoding="utf-8") as f:
    header = f.read()
  for field in ("# Purpose:", "# Command:", "# Expected runtime", "# Expected result"):
    assert field in header, f"{path} lacks {field!r}"
  command = re.search(r"# Command:.*?python -m ([\w.]+)", header)
  module = command.group(1) if command else TRAIN_MODULE
  if module != TRAIN_MODULE:
    values = copy.deepcopy(flags.FLAGS)
    importlib.import_module(module).define_flags(values)
    values([module, f"--flagfile={path}"])
    return
  flags.FLAGS(["train", f"--flagfile={path}", "--model_dir=/tmp/unused"])
  try:
    config = flags_lib.config_from_flags()
  finally:
    flags.FLAGS.unparse_flags()
  for name in config.stages:
    stage_lib.get(name)

"""Packaging rules: tensorflow_addons is never imported; the geometry core imports nothing else of ours; the packages'
dependencies point one way; no stage imports another stage."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("depth_motion", "segmentation", "consistency", "datasets")


def _imported_modules(path):
  tree = ast.parse(path.read_text(), filename=str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module


def test_importing_every_module_loads_no_addons_and_runs_no_tensorflow_op():
  modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                   for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
  code = ("import importlib, sys\n"
          f"for m in {modules!r}: importlib.import_module(m)\n"
          "loaded = sorted(m for m in sys.modules if m.startswith('tensorflow_addons'))\n"
          "assert not loaded, loaded\n"
          # No TensorFlow op may run at import: it would initialise the devices before the training command
          # splits the CPU into replicas (--num_cpu_replicas).
          "import tensorflow as tf\n"
          "cpu = tf.config.list_physical_devices('CPU')[0]\n"
          "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]


def test_no_source_file_mentions_an_addons_import():
  for package in PACKAGES + ("tests", "benchmarks"):
    for path in (ROOT / package).rglob("*.py"):
      assert "tensorflow_addons" not in set(_imported_modules(path)), path


def test_geometry_imports_nothing_of_ours_but_itself():
  for path in (ROOT / "depth_motion" / "geometry").rglob("*.py"):
    for module in _imported_modules(path):
      top = module.split(".")[0]
      if top in PACKAGES:
        assert module.startswith("depth_motion.geometry"), f"{path.name} imports {module}"
      assert top not in ("keras", "tf_keras"), f"{path.name} imports {module}: the geometry core is Keras-free"


def test_dependencies_point_one_way():
  """datasets, depth_motion and segmentation never import consistency."""
  for package in ("datasets", "depth_motion", "segmentation"):
    for path in (ROOT / package).rglob("*.py"):
      for module in _imported_modules(path):
        assert module.split(".")[0] != "consistency", f"{path} imports {module}"


def test_no_stage_imports_another_stage():
  """A module that registers a stage imports libraries (and the unregistered stage bases in consistency/stages/), never
  another stage's module: what stages share lives in libraries."""
  stages_dir = ROOT / "consistency" / "stages"
  stage_modules = {f"consistency.stages.{path.stem}" for path in stages_dir.glob("*.py")
                   if "stage_lib.register(" in path.read_text(encoding="utf-8")}
  assert {"consistency.stages.segmentation", "consistency.stages.consistency", "consistency.stages.depth_motion",
          "consistency.stages.efc"} <= stage_modules
  for path in ROOT.glob("consistency/**/*.py"):
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if name not in stage_modules:
      continue
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imported = set(_imported_modules(path)) | {f"{node.module}.{alias.name}" for node in ast.walk(tree)
                                               if isinstance(node, ast.ImportFrom) and node.module
                                               for alias in node.names}
    assert not imported & (stage_modules - {name}), f"{name} imports the stage(s) {imported & stage_modules}"


def test_the_harness_imports_no_stage_and_no_method():
  """consistency/harness/ (config, flags, stage interface, trainer, ...) runs any stage: of consistency it imports
  only itself, never the stages, the papers' losses or the experiment grids."""
  for path in (ROOT / "consistency" / "harness").glob("*.py"):
    for module in _imported_modules(path):
      if module.split(".")[0] == "consistency":
        assert module.startswith("consistency.harness"), f"{path.name} imports {module}"

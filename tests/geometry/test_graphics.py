"""depth_motion.geometry.graphics: tensorflow-graphics imported without its documentation hook's cost."""

import subprocess
import sys

_PRINT = """
print(sorted(euler.__all__))
print(sorted(rotation_matrix_3d.__all__))
print(sorted(perspective.__all__))
"""
_THROUGH_GRAPHICS = """
import inspect
stack = inspect.stack
from depth_motion.geometry.graphics import euler, perspective, rotation_matrix_3d
assert inspect.stack is stack, "inspect.stack was not restored"
""" + _PRINT
_DIRECT = """
from tensorflow_graphics.geometry.transformation import euler, rotation_matrix_3d
from tensorflow_graphics.rendering.camera import perspective
""" + _PRINT


def _run(script):
  # A fresh interpreter each, so that tensorflow-graphics is imported there (through the patched hook or not).
  return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout


def test_modules_are_those_of_tensorflow_graphics_with_the_same_exports_and_inspect_is_restored():
  patched = _run(_THROUGH_GRAPHICS)
  assert patched == _run(_DIRECT)
  assert "'project'" in patched and "'from_euler'" in patched

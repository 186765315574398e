"""The tensorflow-graphics modules this project uses, imported without the cost of its documentation hook.

Every tensorflow-graphics module ends with `__all__ = export_api.get_functions_and_classes()`, which calls
`inspect.stack()`: that resolves the module of every frame on the stack by scanning `sys.modules`, so once
TensorFlow, Keras and keras-cv are loaded the three modules below took 4.4 s to import, against 0.3 s without the
hook (2-core development machine), in every process that trains. The hook only reads its caller's frame, so while
they load, `inspect.stack` returns that frame alone.
"""

import contextlib
import inspect
import sys


@contextlib.contextmanager
def _caller_frame_only():
  stack = inspect.stack
  # export_api reads inspect.stack()[1][0]: the frame of the module that called it (two frames above this lambda).
  inspect.stack = lambda context=1: [None, (sys._getframe(2),)]
  try:
    yield
  finally:
    inspect.stack = stack


with _caller_frame_only():
  from tensorflow_graphics.geometry.transformation import euler  # pylint: disable=g-import-not-at-top
  from tensorflow_graphics.geometry.transformation import rotation_matrix_3d  # pylint: disable=g-import-not-at-top
  from tensorflow_graphics.rendering.camera import perspective  # pylint: disable=g-import-not-at-top

__all__ = ["euler", "perspective", "rotation_matrix_3d"]

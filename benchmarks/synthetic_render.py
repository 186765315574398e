"""Synthetic generator throughput: frames/s of ray casting alone and of rendering + writing the ScanNet files, at
128x160 and 256x320, in this one process (the generator is single-process; PNG writing overlaps rendering on a
second thread).

    python -m benchmarks.synthetic_render [--scenes=3] [--frames=150] [--sizes=128x160,256x320] [--report=PATH]

Columns per image size, each the median over --scenes scenes of --frames frames:
  render         frames/s of `raycast.Renderer.render` (color + depth + labels in memory), wall clock
  render (CPU)   the same in CPU seconds of this process: what the machine gives when nobody else uses it
  write          frames/s of PNG encoding + file writes alone (color, depth, label PNGs and the pose text)
  render+write   frames/s of `synthetic.render_scene` (the generator's own loop, files on disk), wall clock
  setup          ms per scene to lay out the room and build its renderer (textures), paid once per scene
The load average is printed too: on a shared machine wall-clock rates drop while others compute.
"""

import os
import shutil
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from datasets.synthetic import generator as synthetic
from datasets.synthetic import raycast

_SCENES = flags.DEFINE_integer("scenes", 3, "Scenes per image size (the median over scenes is reported).")
_FRAMES = flags.DEFINE_integer("frames", 150, "Frames per scene.")
_SIZES = flags.DEFINE_list("sizes", ["128x160", "256x320"], "Image sizes HEIGHTxWIDTH.")
_REPORT = flags.DEFINE_string("report", "", "Markdown report path ('' to skip).")


def _measure(height, width, scene_index, frames, workdir):
  start = time.perf_counter()
  scene = synthetic.make_scene(0, scene_index, frames, height, width)
  renderer = raycast.Renderer(scene)
  setup = time.perf_counter() - start
  renderer.render(scene.poses[0])  # warm-up

  wall, cpu = time.perf_counter(), time.process_time()
  rendered = [renderer.render(pose) for pose in scene.poses]
  render_wall, render_cpu = time.perf_counter() - wall, time.process_time() - cpu

  scene_dir = os.path.join(workdir, f"write_{height}x{width}_{scene_index}")
  for folder in synthetic.FRAME_FOLDERS:
    os.makedirs(os.path.join(scene_dir, folder))
  wall = time.perf_counter()
  for index, (frame, pose) in enumerate(zip(rendered, scene.poses)):
    synthetic.write_frame(scene_dir, index, frame, pose)
  write_wall = time.perf_counter() - wall

  wall = time.perf_counter()
  synthetic.render_scene(os.path.join(workdir, f"scene_{height}x{width}_{scene_index}"), scene)
  pipeline_wall = time.perf_counter() - wall
  return {"render": frames / render_wall, "render (CPU)": frames / render_cpu, "write": frames / write_wall,
          "render+write": frames / pipeline_wall, "setup ms": 1000 * setup}


def main(argv):
  del argv
  columns = ("render", "render (CPU)", "write", "render+write", "setup ms")
  rows = []
  load_before = os.getloadavg()[0]
  workdir = tempfile.mkdtemp(prefix="synthetic_render_")
  try:
    for size in _SIZES.value:
      height, width = (int(v) for v in size.lower().split("x"))
      results = [_measure(height, width, i, _FRAMES.value, workdir) for i in range(_SCENES.value)]
      rows.append([f"{height}x{width}"] + [f"{np.median([r[c] for r in results]):.0f}" for c in columns])
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  load_after = os.getloadavg()[0]
  header = ["size"] + [f"{c} (frames/s)" if c != "setup ms" else "setup (ms/scene)" for c in columns]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  table = "\n".join(lines)
  note = (f"{_SCENES.value} scenes x {_FRAMES.value} frames per size, {os.cpu_count()} CPU cores, "
          f"load average {load_before:.1f} before / {load_after:.1f} after (other processes share the CPU).")
  print(table)
  print(note)
  if _REPORT.value:
    with open(_REPORT.value, "w", encoding="utf-8") as f:
      f.write("# Synthetic generator throughput\n\n" + table + "\n\n" + note + "\n")


if __name__ == "__main__":
  app.run(main)

"""Score a folder of predicted flow PNGs (KITTI format) against KITTI flow 2015's training ground truth.

  python -m datasets.kitti_score --predictions=/tmp/flow_pred --root=/data/kitti_flow_2015 [--output=metrics.json]

`--predictions` holds one `<i:06d>_10.png` per training pair, written by `kitti_flow.write_flow` (16-bit RGB, the
size of the pair's images), as the devkit expects. Prints EPE (all, noc), Fl-all and Fl-noc (see
`datasets.flow_metrics`). A missing or malformed prediction ends the command with one message naming the file, and
exit status 1.
"""

import json
import os
import sys

from absl import app
from absl import flags

from datasets import flow_metrics
from datasets.labels import DataError
from datasets.readers import kitti_flow


def score(predictions, root, out=None):
  """The metrics dict of `flow_metrics.summarize` for the predictions folder; prints a summary to `out`.

  Raises:
    DataError: naming a prediction that is missing, not a 16-bit RGB PNG, or of the wrong size.
  """
  out = out or sys.stdout
  pairs = kitti_flow.read_pairs(root, "train")
  errors_occ, errors_noc = [], []
  for pair in pairs:
    path = os.path.join(predictions, f"{pair.name}_10.png")
    if not os.path.isfile(path):
      raise DataError(f"Missing prediction {path}: expected one KITTI flow PNG per training pair "
                      f"({len(pairs)} pairs under {root}).")
    flow, valid = kitti_flow.read_flow(path)
    if flow.shape[:2] != tuple(pair.color_size):
      raise DataError(f"Prediction {path} is {flow.shape[0]}x{flow.shape[1]}; its pair's images are "
                      f"{pair.color_size[0]}x{pair.color_size[1]}.")
    truth = pair.load_ground_truth()
    errors_occ.append(flow_metrics.image_errors(truth["flow_occ"], truth["valid_occ"], flow, valid))
    errors_noc.append(flow_metrics.image_errors(truth["flow_noc"], truth["valid_noc"], flow, valid))
  metrics = flow_metrics.summarize(errors_occ, errors_noc)
  print(f"KITTI flow 2015 training, {metrics['num_images']} pairs: EPE all {metrics['epe_all']:.3f} px, "
        f"EPE noc {metrics['epe_noc']:.3f} px, Fl-all {metrics['fl_all']:.2f} %, Fl-noc {metrics['fl_noc']:.2f} %, "
        f"density {100.0 * metrics['density']:.1f} %", file=out)
  return metrics


FLAGS = flags.FLAGS


def define_flags():
  """The command's flags, defined only when it runs as a program."""
  flags.DEFINE_string("predictions", None, "Folder of predicted flow PNGs <i>_10.png in KITTI format.")
  flags.DEFINE_string("root", None, "KITTI flow 2015 root: the folder holding training/.")
  flags.DEFINE_string("output", "", "Optional path of a JSON file to write the metrics to.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    metrics = score(FLAGS.predictions, FLAGS.root)
  except DataError as e:
    print(f"datasets.kitti_score: error: {e}", file=sys.stderr)
    sys.exit(1)
  if FLAGS.output:
    with open(FLAGS.output, "w", encoding="utf-8") as f:
      json.dump(metrics, f, indent=2)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["predictions", "root"])
  app.run(main)

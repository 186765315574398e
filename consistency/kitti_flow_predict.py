"""Predict KITTI flow 2015 with the flow branch of a trained EFC run, write it in KITTI's format and score it.

  python -m consistency.kitti_flow_predict --model_dir=/tmp/efc_kitti --root=/data/kitti_flow [--split=train] \\
      --output=/tmp/kitti_flow_pred [--height=H --width=W] [--checkpoint=PATH] [--log_every=20]

Reads what an efc run leaves in --model_dir:
  efc/segmenter.json       the stage's architecture record: the segmenter's architecture, the training size
                           (`segmentation.export.read_run`) and the flow branch's (`read_network(..., "flow_net")`)
  efc/checkpoint, ckpt-N   the parts "segmenter" (its backbone is EFC's shared encoder) and "flow_net"
rebuilds both networks from the record (`segmentation.export.restore_segmenter`, `flow_net.FlowNet`) and restores
them from the latest checkpoint (or --checkpoint); every variable must be restored.

Each pair of `datasets.readers.kitti_flow.read_pairs(--root, --split)` is resized to the training size (or --height x
--width), the flow branch predicts the forward flow (frame 10 -> 11) at its finest level, and the flow is resized
(bilinear) to the pair's own size with u scaled by W_orig / w and v by H_orig / h of the grid it was predicted on
(`flow_net.resize_flow`; the same as predicting at the working size and scaling by W_orig / W, H_orig / H). It is
written as `<output>/<i:06d>_10.png` (`kitti_flow.write_flow`, every pixel valid). With ground truth (the training
split), the folder is then scored by `datasets.kitti_score.score` (EPE all / noc, Fl-all / noc, printed) and the
metrics are written to `<output>/metrics.json`.

The command reuses the training flags' --model_dir, --height and --width (this module imports
`consistency.harness.flags`, as `consistency.evaluate` does); its own flags are defined only when it runs as a program.
Bad data, a missing run file or a checkpoint that does not match ends the command with one message naming the file, and
exit status 1.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from consistency import flow_net as flow_net_lib
# pylint: disable-next=unused-import  (defines --model_dir, --height and --width, which this command reuses)
from consistency.harness import flags as flags_lib
from datasets import kitti_score
from datasets.readers import kitti_flow
from segmentation import export as export_lib
from segmentation import segmenter as segmenter_lib

STAGE = "efc"
METRICS_FILE = "metrics.json"
FLOW_NET_KEY = "flow_net"


def load_networks(model_dir, checkpoint=None):
  """The efc stage's segmenter and flow branch of a run, restored.

  Args:
    model_dir: the run's --model_dir (efc/segmenter.json, efc/ checkpoints).
    checkpoint: a checkpoint prefix (or folder) to restore instead of the latest one of `<model_dir>/efc`.

  Returns:
    ({"segmenter": Segmenter, "flow_net": FlowNet}, training size (height, width), the checkpoint path restored).

  Raises:
    FileNotFoundError: naming segmenter.json or the checkpoint location when missing.
    ValueError: naming the file when the record is malformed or the checkpoint does not match the networks.
  """
  segmenter_config, input_size = export_lib.read_run(model_dir, STAGE)
  architecture = export_lib.read_network(model_dir, STAGE, FLOW_NET_KEY)
  checkpoint = export_lib.find_checkpoint(model_dir, checkpoint, STAGE)
  segmenter = segmenter_lib.build_segmenter(segmenter_config)
  export_lib.restore_segmenter(segmenter, checkpoint)
  record = os.path.join(model_dir, STAGE, export_lib.SEGMENTER_JSON)
  try:
    flow_net = flow_net_lib.build_flow_net(flow_net_lib.FlowNet(**architecture, name=FLOW_NET_KEY),
                                           segmenter.backbone.channels)
  except (TypeError, ValueError) as e:
    raise ValueError(f"Malformed flow branch architecture in {record}: {e}") from None
  try:
    status = tf.train.Checkpoint(**{FLOW_NET_KEY: flow_net}).read(checkpoint)
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    raise ValueError(f"Checkpoint {checkpoint} does not restore the flow branch recorded in {record}: "
                     f"{str(e)[:1000]}") from None
  status.expect_partial()  # the step and the optimizer are not restored
  logging.info("Restored the segmenter and the flow branch from %s.", checkpoint)
  return {"segmenter": segmenter, "flow_net": flow_net}, input_size, checkpoint


def forward_flow(networks, images_a, images_b, output_size):
  """Forward flow a -> b of the flow branch, at its finest level, resized to `output_size`.

  Args:
    networks: `load_networks`' dict.
    images_a, images_b: [B, h, w, 3] float32 in [0, 1], at the working size.
    output_size: (height, width) of the output grid (ints or scalar tensors).

  Returns:
    [B, height, width, 2] float32 (u, v) in pixels of the output grid.
  """
  batch = tf.shape(images_a)[0]
  features = networks["segmenter"].backbone_features(tf.concat([images_a, images_b], axis=0), training=False)
  out = networks["flow_net"]({"features_a": {level: f[:batch] for level, f in features.items()},
                              "features_b": {level: f[batch:] for level, f in features.items()}}, training=False)
  finest = min(out["flow"])
  return flow_net_lib.resize_flow(out["flow"][finest], output_size)


def predict(model_dir, root, output, split="train", size=None, checkpoint=None, log_every=20, out=None):
  """Writes the flow of every KITTI pair of `split` into `output`; scores it when the split has ground truth.

  Args:
    model_dir: the efc run (see `load_networks`).
    root: KITTI flow 2015 root (the folder holding training/, testing/).
    output: folder for `<i:06d>_10.png` (and metrics.json).
    split: "train" (with ground truth: scored) or "test".
    size: (height, width) the pairs are resized to (multiples of 32); None: the training size.
    checkpoint: see `load_networks`.
    log_every: log progress every this many pairs.
    out: where the scores are printed (default stdout).

  Returns:
    The metrics dict of `kitti_score.score`, or None for a split without ground truth.

  Raises:
    FileNotFoundError, ValueError (DataError included): naming the run file or data file at fault.
  """
  if size is not None and (len(size) != 2 or min(size) < 32 or any(s % 32 for s in size)):
    raise ValueError(f"height and width must be positive multiples of 32 (the networks' stride). Received: {size}.")
  pairs = kitti_flow.read_pairs(root, split)
  networks, input_size, checkpoint = load_networks(model_dir, checkpoint)
  size = tuple(int(s) for s in (size or input_size))
  logging.info("Predicting the flow of %d KITTI %s pairs at %dx%d into %s.", len(pairs), split, *size, output)
  os.makedirs(output, exist_ok=True)
  forward = tf.function(lambda a, b, output_size: forward_flow(networks, a, b, output_size))
  start = time.time()
  for count, pair in enumerate(pairs, start=1):
    images = [pair.load(index, size)["image"][tf.newaxis] for index in (0, 1)]
    flow = forward(images[0], images[1], tf.constant(pair.color_size, tf.int32))[0]
    kitti_flow.write_flow(os.path.join(output, f"{pair.name}_10.png"), flow.numpy())
    if count % max(1, log_every) == 0 or count == len(pairs):
      elapsed = time.time() - start
      logging.info("%d / %d pairs (%.2f s per pair, %.0f s left).", count, len(pairs), elapsed / count,
                   elapsed / count * (len(pairs) - count))
  if not pairs[0].has_flow:
    print(f"Wrote the flow of {len(pairs)} KITTI {split} pairs to {output} (no ground truth to score).",
          file=out or sys.stdout)
    return None
  metrics = kitti_score.score(output, root, out=out)
  with open(os.path.join(output, METRICS_FILE), "w", encoding="utf-8") as f:
    json.dump(dict(metrics, checkpoint=os.path.abspath(checkpoint), size=list(size), split=split), f, indent=2)
  return metrics


FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """The command's own flags (--model_dir, --height and --width are the training flags'); only when run as a program,
  or on a copy of the flags (tests/test_configs.py)."""
  flags.DEFINE_string("root", None, "KITTI flow 2015 root: the folder holding training/ (and testing/).",
                      flag_values=flag_values)
  flags.DEFINE_enum("split", "train", sorted(kitti_flow.SPLITS), "train: training/ pairs, scored against their "
                    "ground truth; test: testing/ pairs, only written.", flag_values=flag_values)
  flags.DEFINE_string("output", None, "Folder for the predicted <i>_10.png (KITTI format) and metrics.json.",
                      flag_values=flag_values)
  flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (e.g. <model_dir>/efc/ckpt-1000), or folder, to restore "
                      "instead of the latest one of <model_dir>/efc.", flag_values=flag_values)
  flags.DEFINE_integer("log_every", 20, "Log progress every this many pairs.", lower_bound=1, flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  resized = (FLAGS["height"].present, FLAGS["width"].present)
  if any(resized) and not all(resized):
    raise app.UsageError("Pass both --height and --width, or neither (the run's training size).")
  size = (FLAGS.height, FLAGS.width) if all(resized) else None
  try:
    predict(FLAGS.model_dir, FLAGS.root, FLAGS.output, FLAGS.split, size, FLAGS.checkpoint, FLAGS.log_every)
  except (OSError, ValueError) as e:
    print(f"consistency.kitti_flow_predict: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["model_dir", "root", "output"])
  app.run(main)

"""Your own video end to end: a folder holding an mp4 (written with PyAV) and a folder of frames, with sparse labels and
unknown intrinsics, trains depth_motion (one learned K per video, written at each video's size and used by the
consistency stage's teachers) and consistency (from scratch: the segmentation stage reads the same data); the export
segments the mp4 into an overlay video with the same frame count."""

import json
import os

import av
import numpy as np
from PIL import Image
import pytest

from consistency import train
from consistency.harness import report
from consistency.stages import consistency as consistency_stage
from consistency.stages import depth_motion as depth_motion_stage
from consistency.stages import segmentation as segmentation_stage
from datasets import sources
from depth_motion import teachers as teachers_lib
from segmentation import export
from segmentation import predict
from tests import tiny
from tests.datasets import test_video


@pytest.fixture
def root(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "CACHE_ROOT", str(tmp_path / "cache"))  # the import cache, away from ~/.cache
  return test_video.write_root(tmp_path / "videos")


def _config(root, model_dir, **overrides):
  base = dict(stages=("depth_motion", "consistency"), dataset="video", data_root=str(root), video_fps=10, height=64,
              width=96, dm_intrinsics="per_video", geometry="learned", consistency_init_dir="none",
              eval_max_batches=0, **tiny.SEGMENTER_SETTINGS)
  return tiny.train_config(model_dir, **{**base, **overrides})


@pytest.mark.slow  # 90 s: trains depth_motion and consistency; its pieces have fast tests (below, test_video,
# test_predict)
def test_train_on_your_own_video_then_predict_on_it(root, tmp_path):
  (root / "val.txt").write_text("drone\n")
  config = _config(root, tmp_path / "run")
  train.run(config)
  # One learned K per training video, at the video's own size (60x90) and at the working size.
  with open(tmp_path / "run" / "depth_motion" / teachers_lib.INTRINSICS_FILE, encoding="utf-8") as f:
    learned = json.load(f)
  assert learned["working_size"] == [64, 96] and list(learned["videos"]) == ["walk"]
  walk = learned["videos"]["walk"]
  assert walk["native_size"] == [60, 90] and walk["native"][0] == pytest.approx(walk["working"][0] * 90 / 96, rel=1e-3)
  assert "walk (90x60): " in report.summarize(config.model_dir, config.stages)
  # The consistency stage's pairs carry that K, not the stand-in.
  stage = consistency_stage.ConsistencyStage(config)
  k = stage.pair_scenes()[0].intrinsics
  assert k[0, 0] == pytest.approx(walk["working"][0], rel=1e-3) and k[0, 0] != stage.scenes("train")[0].intrinsics[0, 0]
  # The segmenter carries the classes of labels/classes.json into the export, which segments the mp4.
  with open(tmp_path / "run" / "consistency" / "metrics.json", encoding="utf-8") as f:
    metrics = json.load(f)
  assert sorted(metrics["per_class"]) == ["ground", "sky", "wall"] and metrics["num_pixels"] > 0
  saved_model = export.export(config.model_dir, str(tmp_path / "saved_model"), stage="consistency")
  with open(os.path.join(saved_model, "assets", "labels.json"), encoding="utf-8") as f:
    assert json.load(f)["class_names"] == ["ground", "wall", "sky"]
  written = predict.predict_video(saved_model, str(root / "walk.mp4"), str(tmp_path / "pred"), write_masks=True)
  assert len(written) == 1 + test_video.FRAMES
  with av.open(written[0]) as container:
    stream = container.streams.video[0]
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == test_video.FRAMES and float(stream.average_rate) == 30
  assert frames[0].shape == (60, 90, 3)
  classes = np.asarray(Image.open(written[1]))
  assert classes.shape == (60, 90) and classes.max() < 3
  with pytest.raises(FileExistsError, match="already exist"):  # nothing is overwritten without --overwrite
    predict.predict_video(saved_model, str(root / "walk.mp4"), str(tmp_path / "pred"))


def test_without_validation_videos_evaluation_is_skipped(root, tmp_path, caplog):
  stage = segmentation_stage.SegmentationStage(_config(root, tmp_path / "run"))
  assert stage.eval_dataset() is None
  assert "has no validation videos (name them with --video_val or in val.txt at the root): evaluation is skipped" \
      in caplog.text


def test_given_intrinsics_mode_needs_every_video_k(root, tmp_path):
  stage = depth_motion_stage.DepthMotionStage(_config(root, tmp_path / "run", dm_intrinsics="given"))
  with pytest.raises(ValueError, match=r"--dm_intrinsics=given needs every video's K, but 2 scene\(s\) have none "
                                       r"\(drone, walk\): learn them with --dm_intrinsics=per_video"):
    stage.preflight()


def test_preflight_does_not_need_the_teachers_learned_k(root, tmp_path):
  # A run stopped during depth_motion has the teachers' depth_motion.json but not yet their intrinsics.json: the
  # rerun's preflight checks the consistency stage's data as it is; training then needs the learned K.
  config = _config(root, tmp_path / "run")
  teacher_dir = tmp_path / "run" / "depth_motion"
  teacher_dir.mkdir(parents=True)
  (teacher_dir / teachers_lib.MODEL_CONFIG_FILE).write_text(json.dumps({"intrinsics": "per_video"}))
  stage = consistency_stage.ConsistencyStage(config)
  stage.preflight()
  with pytest.raises(FileNotFoundError, match="intrinsics.json not found: the teachers in .* learned one K per video"):
    stage.pair_scenes()


def test_the_consistency_pairs_carry_the_teachers_learned_k(root, tmp_path):
  # The plumbing of the slow end-to-end test without training: a per_video teachers' record and K, written as the
  # depth_motion stage writes them, reach the consistency stage's pairs (at its own size) for every training video.
  config = _config(root, tmp_path / "run")
  stage = consistency_stage.ConsistencyStage(config)
  scenes = stage.scenes("train")  # both videos: no val.txt
  teacher_dir = tmp_path / "run" / "depth_motion"
  teacher_dir.mkdir(parents=True)
  (teacher_dir / teachers_lib.MODEL_CONFIG_FILE).write_text(json.dumps({"intrinsics": "per_video"}))
  learned = np.stack([np.array([[50.0 + i, 0, 20.0], [0, 40.0 + i, 15.0], [0, 0, 1]], np.float32)
                      for i in range(len(scenes))])
  teachers_lib.write_learned_intrinsics(str(teacher_dir), scenes, learned, (32, 48))  # teachers at half the size
  with open(teacher_dir / teachers_lib.INTRINSICS_FILE, encoding="utf-8") as f:
    record = json.load(f)
  assert sorted(record["videos"]) == sorted(s.name for s in scenes) and record["working_size"] == [32, 48]
  walk = record["videos"]["walk"]
  assert walk["native_size"] == [60, 90] and walk["native"][0] == pytest.approx(51.0 * 90 / 48, rel=1e-4)
  (teacher_dir / "metrics.json").write_text(json.dumps({"step": 2}))
  assert "walk (90x60): " in report.summarize(config.model_dir, ("depth_motion",))
  pairs = {s.name: s for s in stage.pair_scenes()}
  for i, scene in enumerate(scenes):  # resized from the teachers' 32x48 to the scenes' 64x96: x2, half-pixel centres
    k = pairs[scene.name].intrinsics
    assert (k[0, 0], k[1, 1]) == pytest.approx((2 * (50.0 + i), 2 * (40.0 + i)), rel=1e-5)
    assert (k[0, 2], k[1, 2]) == pytest.approx((2 * 20.5 - 0.5, 2 * 15.5 - 0.5), rel=1e-5)


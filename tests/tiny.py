"""The tiny segmenter the tests train (seconds per step on a CPU), as TrainConfig settings and as a SegmenterConfig."""

from segmentation import segmenter

# TrainConfig fields of the tiny segmenter.
SEGMENTER_SETTINGS = dict(backbone="resnet50", backbone_filters=(8, 8, 16, 16), backbone_blocks=(1, 1, 1, 1),
                          nasfpn_filters=16, nasfpn_repeats=1, head_filters=16, head_groups=4)
# With EFC's flow branch as narrow.
EFC_SETTINGS = dict(SEGMENTER_SETTINGS, efc_flow_filters=8)
# The same segmenter built directly (21 classes).
SEGMENTER_CONFIG = segmenter.SegmenterConfig(**SEGMENTER_SETTINGS)

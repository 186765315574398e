"""Dataset readers: each turns a dataset's files into `scannet.SceneIndex` scenes for the clip pipeline (scannet:
ScanNet and the synthetic video; cityscapes; camvid; kitti_raw; kitti_flow: KITTI flow 2015 pairs; video: your own
videos), with png and checked_decode for the images they decode."""

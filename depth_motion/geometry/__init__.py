"""The geometry core: stateless, Keras-free, batched float32 and differentiable.

One file per concept; nothing here imports anything else of this project:
  intrinsics    K from (fx, fy, cx, cy) and back, inverse, updates for resize / crop / flip
  graphics      the tensorflow-graphics modules used (projection, rotations), imported fast
  camera        pixel grids, projection and unprojection (tensorflow-graphics), inside-image test
  rigid_motion  rotations from Euler angles (Rx Ry Rz), inverse / composition, motion from poses, translation fields
  resampler     bilinear resampling with gradients and an out-of-bounds policy
  warping       the depth warp and backward warping by optical flow
  occlusion     depth ordering, forward-backward flow consistency, leaving the image
  pose_from_flow  the rigid motion that best explains a flow field given the depth (Gauss-Newton least squares)
  pose_from_images  the rigid motion that best aligns two images given one's depth (direct photometric alignment)
"""

from depth_motion.geometry.camera import inside_image
from depth_motion.geometry.camera import pixel_grid
from depth_motion.geometry.camera import project
from depth_motion.geometry.camera import unproject
from depth_motion.geometry.intrinsics import crop_intrinsics
from depth_motion.geometry.intrinsics import flip_intrinsics
from depth_motion.geometry.intrinsics import intrinsics_params
from depth_motion.geometry.intrinsics import invert_intrinsics
from depth_motion.geometry.intrinsics import make_intrinsics
from depth_motion.geometry.intrinsics import resize_intrinsics
from depth_motion.geometry.occlusion import closer_to_camera
from depth_motion.geometry.occlusion import forward_backward_occlusion
from depth_motion.geometry.occlusion import leaves_image
from depth_motion.geometry.pose_from_flow import motion_from_flow
from depth_motion.geometry.pose_from_images import motion_from_images
from depth_motion.geometry.resampler import resample
from depth_motion.geometry.rigid_motion import angles_from_matrix
from depth_motion.geometry.rigid_motion import compose_motions
from depth_motion.geometry.rigid_motion import invert_motion
from depth_motion.geometry.rigid_motion import matrix_from_angles
from depth_motion.geometry.rigid_motion import mirror_motion
from depth_motion.geometry.rigid_motion import motion_from_poses
from depth_motion.geometry.rigid_motion import transform_points
from depth_motion.geometry.rigid_motion import translation_field
from depth_motion.geometry.warping import DepthWarp
from depth_motion.geometry.warping import coords_from_flow
from depth_motion.geometry.warping import depth_warp
from depth_motion.geometry.warping import flow_from_coords
from depth_motion.geometry.warping import warp_with_flow

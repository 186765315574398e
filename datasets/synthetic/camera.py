"""The camera of a synthetic scene: pinhole intrinsics and a smooth trajectory inside the room, handheld-like
(`sample_trajectory`, rotation-dominated like ScanNet's scans) or a dolly's (`sample_dolly_trajectory`,
translation-dominated).

Camera frame (as everywhere in this project): x right, y down, z forward; world frame as in `synthetic_scene`: z up,
the floor is z = 0 and the room spans [0, Lx] x [0, Ly] x [0, Lz]. Poses are camera-to-world 4x4 matrices (ScanNet's
`pose/<i>.txt`). Intrinsics and poses are rounded to the decimals of their text files, so what is written is exactly
what was rendered.

Everything random is drawn from the `numpy.random.Generator` passed in.
"""

import numpy as np

# Decimals of the pose and intrinsics text files; scenes hold values already rounded to them, so what is written is
# exactly what was rendered.
POSE_DECIMALS = 9
INTRINSICS_DECIMALS = 6

# Camera motions of `sample_trajectory` and `sample_dolly_trajectory`.
MOTIONS = ("handheld", "dolly")
# Distance the camera path keeps from the walls; SMALL_ROOM_WALL_MARGIN in rooms less than 3.5 m across.
WALL_MARGIN = 0.9
SMALL_ROOM_WALL_MARGIN = 0.7


def round_for_text(values, decimals):
  """`values` as written with `decimals` decimals and read back (so rendering uses exactly the values written)."""
  values = np.asarray(values, np.float64)
  return np.array([float(f"{v:.{decimals}f}") for v in values.ravel()]).reshape(values.shape)


def sample_intrinsics(rng, height, width):
  """[3, 3] pinhole K: horizontal field of view 54..64 degrees (ScanNet ~58), square pixels, centred principal point."""
  hfov = np.radians(rng.uniform(54.0, 64.0))
  fx = (width / 2.0) / np.tan(hfov / 2.0)
  fy = fx * rng.uniform(0.995, 1.005)
  cx = (width - 1) / 2.0 + rng.uniform(-0.01, 0.01) * width
  cy = (height - 1) / 2.0 + rng.uniform(-0.01, 0.01) * height
  return round_for_text(np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), INTRINSICS_DECIMALS)


def camera_pose(position, yaw, pitch, roll):
  """[4, 4] camera-to-world pose of a camera at `position` heading `yaw` (about world z, 0 = +x), `pitch` (> 0 looks
  up) and `roll` (about the optical axis). Camera frame: x right, y down, z forward."""
  forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
  right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
  down = np.cross(forward, right)
  right, down = np.cos(roll) * right + np.sin(roll) * down, -np.sin(roll) * right + np.cos(roll) * down
  pose = np.eye(4)
  pose[:3, :3] = np.stack([right, down, forward], axis=1)
  pose[:3, 3] = position
  return pose


class _Sinusoids:
  """f(s) = sum_k a_k sin(2 pi f_k s + phi_k) and its derivative, for several channels at once."""

  def __init__(self, rng, amplitudes, num_terms=3, frequency_range=(0.4, 1.6)):
    amplitudes = np.asarray(amplitudes, np.float64)
    channels = len(amplitudes)
    self.freq = rng.uniform(*frequency_range, (channels, num_terms))
    self.phase = rng.uniform(0, 2 * np.pi, (channels, num_terms))
    self.amp = rng.dirichlet(np.ones(num_terms), channels) * amplitudes[:, None]

  def __call__(self, s):
    s = np.asarray(s, np.float64)[..., None, None]
    return np.sum(self.amp * np.sin(2 * np.pi * self.freq * s + self.phase), axis=-1)

  def derivative(self, s):
    s = np.asarray(s, np.float64)[..., None, None]
    return np.sum(self.amp * 2 * np.pi * self.freq * np.cos(2 * np.pi * self.freq * s + self.phase), axis=-1)


def sample_trajectory(rng, room_size, num_frames, fps):
  """Smooth handheld-like camera poses inside the room.

  Position and heading/pitch/roll are sums of low-frequency sinusoids (plus a slow heading drift, so the camera pans
  around the room). The position stays in a box WALL_MARGIN away from the walls at 1.2-1.6 m height; time is scaled
  so the mean speed is 0.2-0.5 m/s and the mean angular speed 10-30 deg/s (ScanNet's handheld scans).

  Returns:
    [num_frames, 4, 4] float64 camera-to-world poses (rounded to POSE_DECIMALS) and [N, 2] path points (x, y)
    sampled densely between the frames, for keeping furniture away from the camera.
  """
  lx, ly, _ = room_size
  margin = SMALL_ROOM_WALL_MARGIN if min(lx, ly) < 3.5 else WALL_MARGIN
  half = np.array([max(0.05, min(rng.uniform(0.08, 0.2) * l, l / 2 - margin)) for l in (lx, ly)])
  center = np.array([rng.uniform(min(margin + h, l / 2), max(l - margin - h, l / 2)) for h, l in zip(half, (lx, ly))])
  height = rng.uniform(1.25, 1.55)
  position = _Sinusoids(rng, [half[0], half[1], 0.08])
  orientation = _Sinusoids(rng, [0.6, 0.15, 0.05], frequency_range=(0.3, 1.2))  # yaw, pitch, roll
  duration = num_frames / fps
  calibration = np.linspace(0.0, 30.0, 6001)  # a long window, so the mean speed does not depend on the clip length

  speed = rng.uniform(0.2, 0.5)
  position_rate = speed / np.mean(np.linalg.norm(position.derivative(calibration), axis=-1))

  angular_speed = np.radians(rng.uniform(10.0, 30.0))
  drift = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.6) * angular_speed
  rates = orientation.derivative(calibration)

  def mean_angular_speed(rate):
    return np.mean(np.sqrt((drift + rate * rates[:, 0]) ** 2 + (rate * rates[:, 1]) ** 2 + (rate * rates[:, 2]) ** 2))

  lo, hi = 0.0, 1.0
  while mean_angular_speed(hi) < angular_speed:
    hi *= 2.0
  for _ in range(50):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if mean_angular_speed(mid) < angular_speed else (lo, mid)
  orientation_rate = (lo + hi) / 2

  yaw0 = rng.uniform(-np.pi, np.pi)
  pitch0 = rng.uniform(-0.65, -0.25)

  def pose_at(t):
    p = np.array([center[0], center[1], height]) + position(position_rate * t)
    yaw, pitch, roll = orientation(orientation_rate * t)
    return camera_pose(p, yaw0 + drift * t + yaw, pitch0 + pitch, roll)

  times = np.arange(num_frames) / fps
  poses = np.stack([pose_at(t) for t in times])
  dense = np.linspace(0.0, duration, max(2, 4 * num_frames))
  path = np.array([center]) + position(position_rate * dense)[:, :2]
  return round_for_text(poses, POSE_DECIMALS), path

def sample_dolly_trajectory(rng, room_size, num_frames, fps):
  """A camera on a dolly or a robot: back and forth along a straight line through the middle of the room.

  The speed along the line is sinusoidal, 0.5-1.0 m/s on average (5-10 cm per frame at 10 fps); the heading is fixed,
  0-90 degrees off the line (from driving forward to looking sideways), up to a slight sway of about 0.5 deg per frame
  at 10 fps. Translation rather than rotation moves the pixels, unlike `sample_trajectory`'s handheld motion: what
  self-supervised depth needs to learn (parallax). The camera is 0.8-1.6 m above the floor, looking 5-20 deg down.

  Returns:
    [num_frames, 4, 4] float64 camera-to-world poses (rounded to POSE_DECIMALS) and [N, 2] path points (x, y)
    sampled densely along the line, for keeping furniture away from the camera.
  """
  room = np.array(room_size[:2], np.float64)
  margin = SMALL_ROOM_WALL_MARGIN if min(room) < 3.5 else WALL_MARGIN
  center = room / 2 + rng.uniform(-0.1, 0.1, 2) * room
  angle = rng.uniform(0.0, 2 * np.pi)
  direction = np.array([np.cos(angle), np.sin(angle)])
  # The longest half-length that keeps both ends `margin` away from the walls.
  half_length = min(min(c - margin, l - margin - c) / abs(d) for c, l, d in zip(center, room, direction)
                    if abs(d) > 1e-9)
  half_length = max(0.1, half_length)
  speed = rng.uniform(0.5, 1.0)
  period = 4 * half_length / speed  # x(t) = h sin(2 pi t / period) covers 4 h per period
  phase = rng.uniform(0, 2 * np.pi)
  height = rng.uniform(0.8, 1.6)
  yaw0 = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.0, np.pi / 2)
  pitch0 = -rng.uniform(np.radians(5.0), np.radians(20.0))
  sway = _Sinusoids(rng, [0.03, 0.02, 0.01], frequency_range=(0.2, 0.6))  # yaw, pitch, roll in radians

  def offset(t):
    return half_length * np.sin(2 * np.pi * np.asarray(t, np.float64) / period + phase)

  poses = []
  for t in np.arange(num_frames) / fps:
    yaw, pitch, roll = sway(t)
    position = np.append(center + offset(t) * direction, height)
    poses.append(camera_pose(position, yaw0 + yaw, pitch0 + pitch, roll))
  dense = np.linspace(-half_length, half_length, max(2, 4 * num_frames))
  path = center + dense[:, None] * direction
  return round_for_text(np.stack(poses), POSE_DECIMALS), path

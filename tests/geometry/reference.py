"""Float64 NumPy references for the geometry tests (written independently of the TensorFlow code)."""

import numpy as np


def resample(image, coords, boundary):
  """Bilinear sampling, loops over output pixels; see depth_motion.geometry.resampler for the policies."""
  image = np.asarray(image, np.float64)
  coords = np.asarray(coords, np.float64)
  batch, height, width, channels = image.shape
  flat_coords = coords.reshape(batch, -1, 2)
  out = np.zeros((batch, flat_coords.shape[1], channels))
  for b in range(batch):
    for n, (x, y) in enumerate(flat_coords[b]):
      if boundary == "border":
        x = min(max(x, 0.0), width - 1.0)
        y = min(max(y, 0.0), height - 1.0)
      x0, y0 = int(np.floor(x)), int(np.floor(y))
      for dy in (0, 1):
        for dx in (0, 1):
          weight = (1 - abs(x - (x0 + dx))) * (1 - abs(y - (y0 + dy)))
          xi, yi = x0 + dx, y0 + dy
          if boundary == "border":
            xi, yi = min(max(xi, 0), width - 1), min(max(yi, 0), height - 1)
          elif not (0 <= xi < width and 0 <= yi < height):
            continue
          out[b, n] += weight * image[b, yi, xi]
  return out.reshape(coords.shape[:-1] + (channels,))


def rotation_xyz(a, b, c):
  """Rx(a) @ Ry(b) @ Rz(c)."""
  rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
  ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
  rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
  return rx @ ry @ rz


def intrinsics(fx, fy, cx, cy):
  return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)

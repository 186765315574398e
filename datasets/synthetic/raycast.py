"""Vectorized ray casting and shading of a `synthetic_scene.Scene`: color, z-depth and NYU40 labels of every pixel.

One ray per pixel, through the pixel centre (integer coordinates, the geometry core's convention). The ray of pixel
(x, y) is d = R K^-1 (x, y, 1) with R the camera-to-world rotation; it is not normalised, so the ray parameter t of a
hit is exactly the hit's z-depth in the camera frame.

Visibility is one pass over the primitives, each intersected analytically (slab test for boxes, quadratic plus caps
for vertical cylinders, the room as a box seen from inside) with all pixels of the primitive's projected bounding
rectangle at once; only the nearest t and the primitive id are kept. Everything else is deferred to one pass over
all pixels: hit point, face, surface coordinates (u, v) in the primitive's own frame, normal, label and material.

Texture is the material's pattern tile sampled at (u, v) / texel_size, trilinearly from a mip pyramid whose level
follows the pixel's footprint on the surface, so texture does not alias at any resolution. Shading is Lambertian
under a point light at the ceiling plus a fixed directional fill and ambient light: it depends on the surface point
and normal only, never on the viewpoint, so a surface point has the same colour in every frame. Object edges are not
antialiased (one ray per pixel, like the labels and depth).
"""

import collections

import numpy as np

from datasets.synthetic import scene as synthetic_scene
from datasets.synthetic import textures as synthetic_textures

Frame = collections.namedtuple("Frame", ["color", "depth", "label"])
Frame.__doc__ = """A rendered frame.

color: [H, W, 3] uint8 RGB.
depth: [H, W] float32 z-depth of the hit in metres (every pixel hits a surface: the room is closed).
label: [H, W] uint8 NYU40 id of the surface hit.
"""

# Mip level offset: > 0 blurs slightly beyond the pixel footprint (less aliasing, smoother warps).
MIP_BIAS = 0.5
AMBIENT = 0.35
POINT_LIGHT = 1.5
POINT_LIGHT_RANGE = 3.5  # metres at which the point light falls to half
FILL_LIGHT = 0.2
FILL_DIRECTION = (0.35, -0.55, 0.76)  # towards the fill light, world frame

# Projected corners nearer than this (metres) are clipped to it when bounding a primitive's image.
_NEAR = 1e-4
_BOX_EDGES = np.array([(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6),
                       (3, 7)])


def _canonical_yaw(kind, half_size, yaw, labels, materials):
  """A box turned by a multiple of 90 degrees, as an axis-aligned box with its half sizes and face tables permuted."""
  quarter = yaw / (np.pi / 2)
  turns = int(np.round(quarter))
  if kind != synthetic_scene.BOX or abs(quarter - turns) > 1e-9 or turns % 4 == 0:
    return half_size, yaw, labels, materials
  c, s = np.round(np.cos(yaw)), np.round(np.sin(yaw))
  rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
  new_half = tuple(float(h) for h in np.abs(rotation) @ np.asarray(half_size))
  new_labels, new_materials = [None] * 6, [None] * 6
  for face in range(6):
    normal = np.zeros(3)
    normal[face // 2] = 1.0 if face % 2 else -1.0
    world = rotation @ normal
    axis = int(np.argmax(np.abs(world)))
    world_face = 2 * axis + int(world[axis] > 0)
    new_labels[world_face], new_materials[world_face] = labels[face], materials[face]
  return new_half, 0.0, tuple(new_labels), tuple(new_materials)


class Renderer:
  """Renders one scene from any camera pose; construction precomputes rays, primitive tables and textures."""

  def __init__(self, scene, mip_bias=MIP_BIAS):
    self.scene = scene
    height, width = scene.height, scene.width
    k = np.asarray(scene.intrinsics, np.float64)
    self._fx, self._fy, self._cx, self._cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    self._ray_x = ((xs - self._cx) / self._fx).astype(np.float32)
    self._ray_y = ((ys - self._cy) / self._fy).astype(np.float32)
    ray_norm = np.sqrt(self._ray_x.astype(np.float64) ** 2 + self._ray_y ** 2 + 1.0)
    self._ray_norm = ray_norm.astype(np.float32).ravel()
    self._inv_ray_norm = (1.0 / ray_norm).astype(np.float32).ravel()
    self._pixel_angle = 1.0 / np.sqrt(self._fx * self._fy)
    self._mip_bias = float(mip_bias)
    self._build_primitive_tables(scene)
    self._build_materials(scene)
    self._build_textures(scene.texture_seed)
    self._light = tuple(float(v) for v in scene.light_position)
    fill = np.asarray(FILL_DIRECTION, np.float64)
    self._fill = tuple(float(v) for v in fill / np.linalg.norm(fill))

  def _build_primitive_tables(self, scene):
    prims = []
    for p in scene.primitives:
      half, yaw, labels, materials = _canonical_yaw(p.kind, p.half_size, p.yaw, p.labels, p.materials)
      prims.append((p.kind, p.center, half, yaw, labels, materials))
    self._prims = prims
    num = len(prims)
    self._kind = np.array([p[0] for p in prims], np.int8)
    center = np.array([p[1] for p in prims], np.float64)
    half = np.array([p[2] for p in prims], np.float64)
    yaw = np.array([p[3] for p in prims], np.float64)
    # Per-primitive tables as separate 1-D arrays: 1-D gathers are several times faster than row gathers.
    self._center = tuple(np.ascontiguousarray(center[:, i], np.float32) for i in range(3))
    self._cos = np.cos(yaw).astype(np.float32)
    self._sin = np.sin(yaw).astype(np.float32)
    self._has_yaw = bool(np.any(yaw != 0.0))
    self._inv_half = tuple(np.ascontiguousarray(1.0 / half[:, i], np.float32) for i in range(3))
    self._radius = half[:, 0].astype(np.float32)
    self._face_label = np.array([p[4] for p in prims], np.uint8).ravel()
    self._face_material = np.array([p[5] for p in prims], np.int64).ravel()
    # World normal of every (primitive, face) slot; the room's point inwards. Cylinder sides are patched per pixel.
    normals = np.zeros((num, synthetic_scene.NUM_FACES, 3), np.float64)
    for face in range(synthetic_scene.NUM_FACES):
      normals[:, face, face // 2] = 1.0 if face % 2 else -1.0
    normals[0] *= -1.0
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    world_x = c * normals[..., 0] - s * normals[..., 1]
    world_y = s * normals[..., 0] + c * normals[..., 1]
    self._face_normal = tuple(np.ascontiguousarray(n.ravel(), np.float32) for n in (world_x, world_y, normals[..., 2]))
    # Bounding-box corners of every primitive but the room, for culling: [P - 1, 8, 3].
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
    local = signs[None] * half[1:, None, :]
    c, s = np.cos(yaw[1:])[:, None], np.sin(yaw[1:])[:, None]
    self._corners = np.stack([c * local[..., 0] - s * local[..., 1], s * local[..., 0] + c * local[..., 1],
                              local[..., 2]], axis=-1) + center[1:, None, :]

  def _build_materials(self, scene):
    mats = scene.materials
    self._mat_pattern = np.array([m.pattern for m in mats], np.int64)
    self._mat_inv_texel = np.array([1.0 / m.texel_size for m in mats], np.float32)
    offset = np.array([m.offset for m in mats], np.float64)
    self._mat_offset = tuple(np.ascontiguousarray(offset[:, i], np.float32) for i in range(2))
    color0 = np.array([m.color0 for m in mats], np.float64)
    delta = np.array([m.color1 for m in mats], np.float64) - color0
    self._mat_color0 = tuple(np.ascontiguousarray(color0[:, i], np.float32) for i in range(3))
    self._mat_color_delta = tuple(np.ascontiguousarray(delta[:, i], np.float32) for i in range(3))

  def _build_textures(self, seed):
    tiles = synthetic_textures.pattern_tiles(seed)  # [T, S, S]
    num_tiles, size = tiles.shape[0], tiles.shape[1]
    levels = int(np.log2(size)) + 1
    flat, offsets, base = [], np.zeros((num_tiles, levels), np.int64), 0
    level = tiles.astype(np.float64)
    for l in range(levels):
      s = level.shape[1]
      padded = np.concatenate([level, level[:, :1]], axis=1)
      padded = np.concatenate([padded, padded[:, :, :1]], axis=2)  # [T, s + 1, s + 1], wrapped
      for t in range(num_tiles):
        offsets[t, l] = base + t * (s + 1) ** 2
      flat.append(padded.reshape(-1))
      base += num_tiles * (s + 1) ** 2
      if s > 1:
        level = level.reshape(num_tiles, s // 2, 2, s // 2, 2).mean(axis=(2, 4))
    self._texels = np.concatenate(flat).astype(np.float32)
    self._tex_offsets = offsets.ravel()
    self._tex_levels = levels
    self._tex_size = size

  # ------------------------------------------------------------------------------------------------------------
  # Visibility

  def _rays(self, pose):
    r = np.asarray(pose, np.float64)[:3, :3].tolist()
    rx, ry = self._ray_x, self._ray_y
    dx = r[0][0] * rx + r[0][1] * ry + r[0][2]
    dy = r[1][0] * rx + r[1][1] * ry + r[1][2]
    dz = r[2][0] * rx + r[2][1] * ry + r[2][2]
    return dx, dy, dz

  def _screen_rectangles(self, pose):
    """[P - 1, 4] (y0, y1, x0, x1) pixel slices bounding each non-room primitive's image; empty when unseen."""
    pose = np.asarray(pose, np.float64)
    cam = (self._corners - pose[:3, 3]) @ pose[:3, :3]  # R^T (p - o): [P - 1, 8, 3]
    z = cam[..., 2]
    front = z > _NEAR
    za, zb = z[:, _BOX_EDGES[:, 0]], z[:, _BOX_EDGES[:, 1]]
    crossing = (za > _NEAR) != (zb > _NEAR)
    with np.errstate(divide="ignore", invalid="ignore"):
      alpha = np.where(crossing, (_NEAR - za) / (zb - za), 0.0)
    pa, pb = cam[:, _BOX_EDGES[:, 0]], cam[:, _BOX_EDGES[:, 1]]
    clipped = pa + alpha[..., None] * (pb - pa)
    clipped[..., 2] = _NEAR
    points = np.concatenate([cam, clipped], axis=1)
    valid = np.concatenate([front, crossing], axis=1)
    pz = np.where(valid, points[..., 2], 1.0)
    u = self._fx * points[..., 0] / pz + self._cx
    v = self._fy * points[..., 1] / pz + self._cy
    big = 1e9
    u_min = np.where(valid, u, big).min(axis=1)
    u_max = np.where(valid, u, -big).max(axis=1)
    v_min = np.where(valid, v, big).min(axis=1)
    v_max = np.where(valid, v, -big).max(axis=1)
    height, width = self.scene.height, self.scene.width
    # Pixel x sees the primitive only if u_min <= x <= u_max; one pixel of slack for rounding.
    x0 = np.clip(np.floor(u_min), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(u_max) + 2, 0, width).astype(np.int64)
    y0 = np.clip(np.floor(v_min), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(v_max) + 2, 0, height).astype(np.int64)
    return np.stack([y0, y1, x0, x1], axis=1)

  def cast(self, pose):
    """Visibility only: ([H, W] float32 z-depth, [H, W] int64 primitive id, (dx, dy, dz) world ray directions)."""
    o = np.asarray(pose, np.float64)[:3, 3].tolist()
    ox, oy, oz = o
    dx, dy, dz = self._rays(pose)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
      inv = [1.0 / dx, 1.0 / dy, 1.0 / dz]
      # The room: leave the box [0, L]^3 through the nearest of its exit planes.
      lx, ly, lz = self.scene.room_size
      depth = None
      for axis, (origin, size) in enumerate(((ox, lx), (oy, ly), (oz, lz))):
        exit_t = np.maximum((0.0 - origin) * inv[axis], (size - origin) * inv[axis])
        depth = exit_t if depth is None else np.minimum(depth, exit_t)
      ids = np.zeros(depth.shape, np.int64)
      rects = self._screen_rectangles(pose)
      for index, (y0, y1, x0, x1) in enumerate(rects.tolist(), start=1):
        if y0 >= y1 or x0 >= x1:
          continue
        window = (slice(y0, y1), slice(x0, x1))
        if self._kind[index] == synthetic_scene.BOX:
          t = self._intersect_box(index, (ox, oy, oz), window, dx, dy, inv)
        else:
          t = self._intersect_cylinder(index, (ox, oy, oz), window, dx, dy, dz)
        nearest = depth[window]
        hit = (t > 0.0) & (t < nearest)
        np.copyto(nearest, t, where=hit)
        np.copyto(ids[window], index, where=hit)
    return depth, ids, (dx, dy, dz)

  def _intersect_box(self, index, origin, window, dx, dy, inv):
    """Entry t of the rays in `window` into box `index` (NaN or <= 0 or > exit where missed)."""
    _, center, half, yaw, _, _ = self._prims[index]
    ox, oy, oz = (o - c for o, c in zip(origin, center))
    hx, hy, hz = half
    if yaw == 0.0:
      inv_x, inv_y = inv[0][window], inv[1][window]
    else:
      c, s = np.cos(yaw), np.sin(yaw)
      ox, oy = c * ox + s * oy, -s * ox + c * oy
      wdx, wdy = dx[window], dy[window]
      inv_x = 1.0 / (c * wdx + s * wdy)
      inv_y = 1.0 / (c * wdy - s * wdx)
    inv_z = inv[2][window]
    a = (-hx - ox) * inv_x
    b = (hx - ox) * inv_x
    t_near, t_far = np.minimum(a, b), np.maximum(a, b)
    a = (-hy - oy) * inv_y
    b = (hy - oy) * inv_y
    np.maximum(t_near, np.minimum(a, b), out=t_near)
    np.minimum(t_far, np.maximum(a, b), out=t_far)
    a = (-hz - oz) * inv_z
    b = (hz - oz) * inv_z
    np.maximum(t_near, np.minimum(a, b), out=t_near)
    np.minimum(t_far, np.maximum(a, b), out=t_far)
    t_near[t_near > t_far] = np.inf
    return t_near

  def _intersect_cylinder(self, index, origin, window, dx, dy, dz):
    """Entry t of the rays in `window` into the vertical cylinder `index` (side or cap; inf where missed)."""
    _, center, half, _, _, _ = self._prims[index]
    ox, oy, oz = (o - c for o, c in zip(origin, center))
    r, hz = half[0], half[2]
    wdx, wdy, wdz = dx[window], dy[window], dz[window]
    a = wdx * wdx + wdy * wdy
    b = ox * wdx + oy * wdy  # half of the linear coefficient
    c = ox * ox + oy * oy - r * r
    disc = b * b - a * c
    t = (-b - np.sqrt(disc)) / a
    z = oz + t * wdz
    side = (disc >= 0.0) & (np.abs(z) <= hz)
    t = np.where(side, t, np.float32(np.inf))
    if abs(oz) > hz:  # the camera sees one cap
      cap_z = hz if oz > 0 else -hz
      t_cap = (cap_z - oz) / wdz
      cx, cy = ox + t_cap * wdx, oy + t_cap * wdy
      cap = ~side & (cx * cx + cy * cy <= r * r)
      t = np.where(cap, t_cap, t)
    return t

  # ------------------------------------------------------------------------------------------------------------
  # Shading

  def render(self, pose, noise_stddev=0.0, noise_rng=None):
    """Renders the scene seen from `pose`.

    Args:
      pose: [4, 4] camera-to-world pose (camera frame x right, y down, z forward).
      noise_stddev: standard deviation of Gaussian sensor noise added to the color, in 8-bit levels (0: none).
        Depth and labels are never noisy.
      noise_rng: numpy.random.Generator for the noise (required when noise_stddev > 0).

    Returns:
      A `Frame`.
    """
    height, width = self.scene.height, self.scene.width
    depth, ids, (dx, dy, dz) = self.cast(pose)
    ox, oy, oz = np.asarray(pose, np.float64)[:3, 3].tolist()
    t = depth.ravel()
    pid = ids.ravel()
    dx, dy, dz = dx.ravel(), dy.ravel(), dz.ravel()
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz

    # Hit point in the primitive's frame; the face is the axis where it lies on the surface (|l| / half == 1).
    lx = px - np.take(self._center[0], pid)
    ly = py - np.take(self._center[1], pid)
    lz = pz - np.take(self._center[2], pid)
    if self._has_yaw:
      cos, sin = np.take(self._cos, pid), np.take(self._sin, pid)
      lx, ly = cos * lx + sin * ly, cos * ly - sin * lx
    qx = np.abs(lx) * np.take(self._inv_half[0], pid)
    qy = np.abs(ly) * np.take(self._inv_half[1], pid)
    qz = np.abs(lz) * np.take(self._inv_half[2], pid)
    is_x = (qx >= qy) & (qx >= qz)
    is_z = ~is_x & (qz > qy)
    is_y = ~(is_x | is_z)
    u = np.where(is_x, ly, lx)
    v = np.where(is_z, ly, lz)
    across = np.where(is_x, lx, np.where(is_y, ly, lz))
    slot = pid * synthetic_scene.NUM_FACES + (2 * is_y + 4 * is_z + (across > 0))
    nx, ny, nz = (np.take(n, slot) for n in self._face_normal)

    cylinder = np.flatnonzero(np.take(self._kind, pid) == synthetic_scene.CYLINDER)
    if cylinder.size:
      cx, cy, cz = lx[cylinder], ly[cylinder], lz[cylinder]
      rho = np.sqrt(cx * cx + cy * cy)
      radius = self._radius[pid[cylinder]]
      side = rho / radius >= qz[cylinder]
      up = cz > 0
      slot[cylinder] = pid[cylinder] * synthetic_scene.NUM_FACES + np.where(side, 0, np.where(up, 5, 4))
      u[cylinder] = np.where(side, np.arctan2(cy, cx) * radius, cx)
      v[cylinder] = np.where(side, cz, cy)
      inv_rho = 1.0 / np.maximum(rho, 1e-6)
      nx[cylinder] = np.where(side, cx * inv_rho, 0.0)
      ny[cylinder] = np.where(side, cy * inv_rho, 0.0)
      nz[cylinder] = np.where(side, 0.0, np.where(up, 1.0, -1.0))

    label = np.take(self._face_label, slot)
    material = np.take(self._face_material, slot)

    # Texture, trilinear from the mip pyramid. The level follows the pixel's footprint on the surface along its
    # longer axis (range / f / cos(incidence), in texels), as GPUs choose it: no aliasing at grazing angles.
    inv_texel = np.take(self._mat_inv_texel, material)
    tu = (u + np.take(self._mat_offset[0], material)) * inv_texel
    tv = (v + np.take(self._mat_offset[1], material)) * inv_texel
    cos_incidence = np.abs(nx * dx + ny * dy + nz * dz) * self._inv_ray_norm
    footprint = (t * self._ray_norm) * inv_texel * (np.float32(self._pixel_angle) / np.maximum(
        cos_incidence, np.float32(0.05)))
    # log(x) / log(2): np.log2 is several times slower than np.log on float32.
    lod = np.log(np.maximum(footprint, np.float32(1e-6)))
    lod *= np.float32(1.0 / np.log(2.0))
    lod += np.float32(self._mip_bias)
    np.clip(lod, 0.0, np.float32(self._tex_levels - 1), out=lod)
    level0 = lod.astype(np.int32)
    blend = lod - level0
    level1 = np.minimum(level0 + 1, np.int32(self._tex_levels - 1))
    pattern = np.take(self._mat_pattern, material)
    value0 = self._sample(pattern, level0, tu, tv)
    value1 = self._sample(pattern, level1, tu, tv)
    value = value0 + blend * (value1 - value0)

    # Lambert: point light at the ceiling, directional fill, ambient. View-independent.
    lx_, ly_, lz_ = self._light
    to_light_x, to_light_y, to_light_z = lx_ - px, ly_ - py, lz_ - pz
    dist2 = to_light_x * to_light_x + to_light_y * to_light_y + to_light_z * to_light_z
    lambert = np.maximum(nx * to_light_x + ny * to_light_y + nz * to_light_z, 0.0) / np.sqrt(dist2)
    falloff = 1.0 / (1.0 + dist2 * np.float32(1.0 / POINT_LIGHT_RANGE ** 2))
    fx, fy, fz = self._fill
    fill = np.maximum(nx * fx + ny * fy + nz * fz, 0.0)
    shade = (AMBIENT * 255.0) + (POINT_LIGHT * 255.0) * lambert * falloff + (FILL_LIGHT * 255.0) * fill

    color = np.empty((3, t.size), np.float32)
    for channel in range(3):
      base = np.take(self._mat_color0[channel], material)
      color[channel] = (base + value * np.take(self._mat_color_delta[channel], material)) * shade
    if noise_stddev > 0.0:
      if noise_rng is None:
        raise ValueError("noise_rng is required when noise_stddev > 0.")
      color += noise_rng.normal(0.0, noise_stddev, color.shape).astype(np.float32)
    color += 0.5
    np.clip(color, 0.0, 255.0, out=color)
    color = np.ascontiguousarray(color.astype(np.uint8).T)
    return Frame(color=color.reshape(height, width, 3), depth=depth, label=label.reshape(height, width))

  def _sample(self, pattern, level, tu, tv):
    """Bilinear, periodic lookup of pattern tiles ([N] int64) at mip `level` ([N] int32), texel coordinates (tu, tv).

    Each level of each tile is stored with one wrapped extra row and column, so the four neighbours of texel
    (x0, y0) sit at index, index + 1, index + stride and index + stride + 1.
    """
    scale = np.ldexp(np.float32(1.0), -level)
    mask = np.right_shift(np.int32(self._tex_size - 1), level)
    x = tu * scale
    x -= 0.5
    y = tv * scale
    y -= 0.5
    x_floor, y_floor = np.floor(x), np.floor(y)
    wx, wy = x - x_floor, y - y_floor
    x0 = x_floor.astype(np.int32) & mask
    y0 = y_floor.astype(np.int32) & mask
    stride = mask + 2
    index = np.take(self._tex_offsets, pattern * self._tex_levels + level) + (y0 * stride + x0)
    texels = self._texels
    v00 = np.take(texels, index)
    v01 = np.take(texels, index + 1)
    index += stride
    v10 = np.take(texels, index)
    v11 = np.take(texels, index + 1)
    top = v00 + wx * (v01 - v00)
    bottom = v10 + wx * (v11 - v10)
    return top + wy * (bottom - top)

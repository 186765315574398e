"""Procedural indoor scenes: room layout and furniture, and `sample_scene`, which adds the camera and materials.

A scene is a closed box-shaped room (floor, 4 walls, ceiling) furnished with boxes (optionally rotated about the
vertical axis) and vertical cylinders, each carrying an NYU40 class id; thin boxes on the walls stand for doors,
windows, pictures and curtains. Every surface has a material (`synthetic_textures`); the camera's intrinsics and
trajectory come from `synthetic_camera`, and furniture keeps clear of the camera's path.

World frame: z up, the floor is z = 0 and the room spans [0, Lx] x [0, Ly] x [0, Lz]. Camera frame (as everywhere in
this project): x right, y down, z forward. Poses are camera-to-world 4x4 matrices (ScanNet's `pose/<i>.txt`).

Everything random is drawn from the `numpy.random.Generator` passed in, so a scene is a pure function of its seed.
Class frequencies follow the room type (bedroom, living room, office, kitchen, bathroom): walls and floor fill most
pixels, pictures, doors, sinks and toilets are rare.
"""

import dataclasses

import numpy as np

from datasets.synthetic import camera as synthetic_camera
from datasets.synthetic import textures as synthetic_textures

# NYU40 ids. The first 20 are ScanNet's benchmark classes; the rest map to background.
WALL = 1
FLOOR = 2
CABINET = 3
BED = 4
CHAIR = 5
SOFA = 6
TABLE = 7
DOOR = 8
WINDOW = 9
BOOKSHELF = 10
PICTURE = 11
COUNTER = 12
DESK = 14
CURTAIN = 16
REFRIGERATOR = 24
SHOWER_CURTAIN = 28
TOILET = 33
SINK = 34
BATHTUB = 36
OTHERFURNITURE = 39
MIRROR = 19
FLOOR_MAT = 20
CEILING = 22
BOOKS = 23
TELEVISION = 25
BOX_PROP = 29
WHITEBOARD = 30
LAMP = 35
OTHERPROP = 40

BENCHMARK_NYU40_IDS = (WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF, PICTURE, COUNTER, DESK,
                       CURTAIN, REFRIGERATOR, SHOWER_CURTAIN, TOILET, SINK, BATHTUB, OTHERFURNITURE)

# Primitive kinds.
BOX = 0
CYLINDER = 1

# Faces of a box, indexed 2 * axis + (outward normal along +axis): -x, +x, -y, +y, -z (bottom), +z (top).
# A cylinder uses face 0 for its side and 4 / 5 for its caps. The room is primitive 0, a box seen from inside: its
# faces 0..3 are the walls, 4 the floor and 5 the ceiling.
NUM_FACES = 6
TOP = 5
FRONT = 3  # +y: the side of a wall object that faces into the room.

ROOM_TYPES = ("bedroom", "living_room", "office", "kitchen", "bathroom")
ROOM_TYPE_PROBABILITIES = (0.25, 0.2, 0.25, 0.15, 0.15)

# Horizontal clearance kept between every object and the camera path.
OBJECT_CLEARANCE = 0.4
LOW_OBJECT_CLEARANCE = 0.25  # for objects no higher than LOW_OBJECT_HEIGHT, which the camera looks down on
LOW_OBJECT_HEIGHT = 0.9


@dataclasses.dataclass(frozen=True)
class Primitive:
  """A box or a vertical cylinder in world coordinates.

  kind: BOX or CYLINDER.
  center: (x, y, z) world centre.
  half_size: box: half extents (hx, hy, hz) along its own axes; cylinder: (radius, radius, half height).
  yaw: rotation about the world z axis (radians), object-to-world; 0 for cylinders.
  labels: NUM_FACES NYU40 ids, one per face.
  materials: NUM_FACES indices into `Scene.materials`, one per face.
  """
  kind: int
  center: tuple
  half_size: tuple
  yaw: float
  labels: tuple
  materials: tuple


@dataclasses.dataclass(frozen=True)
class Scene:
  """A furnished room, its camera and the camera's trajectory.

  room_type: one of ROOM_TYPES.
  room_size: (Lx, Ly, Lz) metres.
  primitives: tuple of Primitive; primitives[0] is the room itself.
  materials: tuple of `synthetic_textures.Material`.
  objects: tuple of (name, NYU40 id) of the furniture placed, for the scene description.
  height, width: image size in pixels.
  intrinsics: [3, 3] float64 pinhole K (pixel centres at integer coordinates).
  poses: [F, 4, 4] float64 camera-to-world poses of the frames.
  fps: frame rate of `poses`.
  light_position: (x, y, z) of the ceiling light.
  texture_seed: seed of the pattern tiles (`synthetic_textures.pattern_tiles`).
  """
  room_type: str
  room_size: tuple
  primitives: tuple
  materials: tuple
  objects: tuple
  height: int
  width: int
  intrinsics: np.ndarray
  poses: np.ndarray
  fps: float
  light_position: tuple
  texture_seed: int

  def description(self):
    """A JSON-friendly summary: room, camera and the objects placed."""
    return {
        "room_type": self.room_type,
        "room_size": [round(float(v), 4) for v in self.room_size],
        "height": self.height,
        "width": self.width,
        "fps": self.fps,
        "num_frames": int(len(self.poses)),
        "num_primitives": len(self.primitives),
        "objects": [{"name": name, "nyu40_id": label} for name, label in self.objects],
    }


def _pick(rng, options):
  """One of `options`, uniformly (Generator.choice is slow for the many small draws of a layout)."""
  return options[int(rng.integers(len(options)))]


# ----------------------------------------------------------------------------------------------------------------
# Furniture. Each builder returns a `_Part` list in the object's local frame: x along its width, y its depth (+y is its
# front, facing into the room for wall objects), z up from the floor, origin at the centre of its footprint. Builders
# take the scene's rng and `m`, its `synthetic_textures.Materials`.


@dataclasses.dataclass
class _Part:
  kind: int
  center: tuple
  half_size: tuple
  label: int
  materials: tuple
  yaw: float = 0.0


@dataclasses.dataclass
class _Object:
  name: str
  label: int
  width: float
  depth: float
  height: float
  parts: list

  @property
  def top(self):
    """Height of the highest part, props on it included."""
    return max([self.height] + [p.center[2] + p.half_size[2] for p in self.parts])


def _faces(material, top=None, front=None):
  faces = [material] * NUM_FACES
  if top is not None:
    faces[TOP] = top
  if front is not None:
    faces[FRONT] = front
  return tuple(faces)


def _box(x, y, z0, width, depth, height, label, materials, yaw=0.0):
  """A box part standing on z0, centred at (x, y) in the object's frame."""
  if isinstance(materials, int):
    materials = _faces(materials)
  return _Part(BOX, (x, y, z0 + height / 2), (width / 2, depth / 2, height / 2), label, materials, yaw)


def _cylinder(x, y, z0, radius, height, label, materials):
  if isinstance(materials, int):
    materials = _faces(materials)
  return _Part(CYLINDER, (x, y, z0 + height / 2), (radius, radius, height / 2), label, materials)


def _cabinet(rng, m, tall=None):
  tall = rng.random() < 0.4 if tall is None else tall
  w, d = rng.uniform(0.5, 1.4), rng.uniform(0.4, 0.6)
  h = rng.uniform(1.5, 2.1) if tall else rng.uniform(0.7, 0.95)
  body = m.furniture()
  return _Object("cabinet", CABINET, w, d, h, [_box(0, 0, 0, w, d, h, CABINET, _faces(body, front=m.panel()))])


def _bed(rng, m):
  w, d = rng.uniform(0.9, 1.8), rng.uniform(1.95, 2.15)
  frame_h = rng.uniform(0.25, 0.4)
  frame, sheet, blanket, pillow = m.wood(), m.fabric(), m.fabric(), m.fabric()
  mattress_h = rng.uniform(0.18, 0.25)
  top = frame_h + mattress_h
  head_h = rng.uniform(0.8, 1.2)
  parts = [
      _box(0, 0.03, 0, w, d - 0.06, frame_h, BED, frame),
      _box(0, 0.04, frame_h, w - 0.04, d - 0.1, mattress_h, BED, sheet),
      _box(0, -d / 2 + 0.03, 0, w, 0.06, head_h, BED, frame),
  ]
  blanket_d = (d - 0.1) * rng.uniform(0.5, 0.7)
  parts.append(_box(0, d / 2 - 0.06 - blanket_d / 2, top, w - 0.02, blanket_d, 0.04, BED, blanket))
  pillows = 1 if w < 1.3 else 2
  pw = (w - 0.1) / pillows - 0.05
  for i in range(pillows):
    x = -w / 2 + 0.05 + (i + 0.5) * (w - 0.1) / pillows
    parts.append(_box(x, -d / 2 + 0.3, top, pw, 0.35, 0.12, BED, pillow))
  return _Object("bed", BED, w, d, top + 0.12, parts)


def _chair(rng, m):
  w = d = rng.uniform(0.42, 0.52)
  seat_h = rng.uniform(0.43, 0.48)
  back_h = rng.uniform(0.35, 0.5)
  body = m.furniture()
  seat = m.fabric() if rng.random() < 0.5 else body
  parts = [_box(0, 0, seat_h - 0.05, w, d, 0.05, CHAIR, _faces(body, top=seat)),
           _box(0, -d / 2 + 0.025, seat_h, w, 0.05, back_h, CHAIR, _faces(body, front=seat))]
  if rng.random() < 0.6:
    leg = 0.035
    for sx in (-1, 1):
      for sy in (-1, 1):
        parts.append(_box(sx * (w / 2 - leg), sy * (d / 2 - leg), 0, leg, leg, seat_h - 0.05, CHAIR, body))
  else:  # office chair: pedestal and round base
    metal = m.metal()
    parts.append(_cylinder(0, 0, 0.05, 0.03, seat_h - 0.1, CHAIR, metal))
    parts.append(_cylinder(0, 0, 0, 0.27, 0.05, CHAIR, metal))
    w = d = max(w, 0.54)
  return _Object("chair", CHAIR, w, d, seat_h + back_h, parts)


def _sofa(rng, m):
  w, d = rng.uniform(1.5, 2.4), rng.uniform(0.8, 0.95)
  cover, cushion = m.fabric(), m.fabric()
  base_h, back_h, arm_w, arm_h, back_d = 0.3, rng.uniform(0.75, 0.9), 0.18, rng.uniform(0.55, 0.65), 0.2
  parts = [_box(0, 0, 0, w, d, base_h, SOFA, cover),
           _box(0, -d / 2 + back_d / 2, base_h, w, back_d, back_h - base_h, SOFA, cover)]
  for sx in (-1, 1):
    parts.append(_box(sx * (w / 2 - arm_w / 2), back_d / 2, base_h, arm_w, d - back_d, arm_h - base_h, SOFA, cover))
  seats = 2 if w < 1.9 else 3
  seat_w = (w - 2 * arm_w) / seats
  for i in range(seats):
    x = -w / 2 + arm_w + (i + 0.5) * seat_w
    parts.append(_box(x, back_d / 2, base_h, seat_w - 0.02, d - back_d - 0.02, 0.13, SOFA, cushion))
  return _Object("sofa", SOFA, w, d, back_h, parts)


def _table(rng, m, coffee=False, label=TABLE):
  h = rng.uniform(0.38, 0.5) if coffee else rng.uniform(0.72, 0.77)
  top_t = rng.uniform(0.03, 0.05)
  body = m.furniture()
  if rng.random() < 0.25 and not coffee:  # round table on a pedestal
    r = rng.uniform(0.4, 0.6)
    parts = [_cylinder(0, 0, h - top_t, r, top_t, label, body),
             _cylinder(0, 0, 0.03, 0.05, h - top_t - 0.03, label, body),
             _cylinder(0, 0, 0, 0.25, 0.03, label, body)]
    return _Object("table", label, 2 * r, 2 * r, h, parts)
  w = rng.uniform(0.8, 1.4) if coffee else rng.uniform(0.8, 1.8)
  d = rng.uniform(0.45, 0.7) if coffee else rng.uniform(0.6, 1.0)
  parts = [_box(0, 0, h - top_t, w, d, top_t, label, body)]
  leg = 0.05
  for sx in (-1, 1):
    for sy in (-1, 1):
      parts.append(_box(sx * (w / 2 - leg), sy * (d / 2 - leg), 0, leg, leg, h - top_t, label, body))
  return _Object("table", label, w, d, h, parts)


def _desk(rng, m):
  w, d, h = rng.uniform(1.0, 1.6), rng.uniform(0.6, 0.8), rng.uniform(0.72, 0.77)
  body = m.furniture()
  parts = [_box(0, 0, h - 0.03, w, d, 0.03, DESK, body),
           _box(-w / 2 + 0.015, 0, 0, 0.03, d, h - 0.03, DESK, body)]
  if rng.random() < 0.5:
    parts.append(_box(w / 2 - 0.015, 0, 0, 0.03, d, h - 0.03, DESK, body))
  else:
    parts.append(_box(w / 2 - 0.21, 0, 0, 0.42, d - 0.04, h - 0.03, DESK, _faces(body, front=m.panel())))
  parts.append(_box(0, -d / 2 + 0.01, 0.3, w - 0.06, 0.02, h - 0.33, DESK, body))  # modesty panel
  return _Object("desk", DESK, w, d, h, parts)


def _bookshelf(rng, m):
  w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.4), rng.uniform(1.2, 2.1)
  body = m.furniture()
  side, board = 0.02, 0.02
  parts = [_box(-w / 2 + side / 2, 0, 0, side, d, h, BOOKSHELF, body),
           _box(w / 2 - side / 2, 0, 0, side, d, h, BOOKSHELF, body),
           _box(0, 0, h - board, w - 2 * side, d, board, BOOKSHELF, body),
           _box(0, 0, 0, w - 2 * side, d, 0.06, BOOKSHELF, body),
           _box(0, -d / 2 + 0.005, 0.06, w - 2 * side, 0.01, h - 0.06 - board, BOOKSHELF, body)]
  shelves = max(2, int((h - 0.08) / 0.36))
  gap = (h - 0.06 - board) / shelves
  books = m.books()
  inner = w - 2 * side
  for i in range(shelves):
    z = 0.06 + i * gap
    if i > 0:
      parts.append(_box(0, 0, z - board, inner, d, board, BOOKSHELF, body))
    if rng.random() < 0.85:
      bw = inner * rng.uniform(0.4, 0.95)
      bx = rng.uniform(-inner / 2 + bw / 2, inner / 2 - bw / 2)
      bh = (gap - board) * rng.uniform(0.6, 0.9)
      parts.append(_box(bx, -d / 2 + 0.01 + (d * 0.75) / 2, z, bw, d * 0.75, bh, BOOKS, books))
  return _Object("bookshelf", BOOKSHELF, w, d, h, parts)


def _refrigerator(rng, m):
  w, d, h = rng.uniform(0.6, 0.9), rng.uniform(0.65, 0.75), rng.uniform(1.6, 1.9)
  body = m.metal() if rng.random() < 0.5 else m.ceramic()
  return _Object("refrigerator", REFRIGERATOR, w, d, h, [
      _box(0, 0, 0, w, d, h, REFRIGERATOR, body),
      _box(-w / 2 + 0.08, d / 2 + 0.02, h * 0.45, 0.03, 0.04, h * 0.35, REFRIGERATOR, m.metal())])


def _toilet(rng, m):
  white = m.ceramic()
  r = rng.uniform(0.17, 0.2)
  d = 0.7
  return _Object("toilet", TOILET, 0.45, d, 0.8, [
      _box(0, -d / 2 + 0.1, 0.38, 0.42, 0.2, 0.4, TOILET, white),
      _cylinder(0, 0.08, 0, r, 0.38, TOILET, white),
      _cylinder(0, 0.08, 0.38, r + 0.02, 0.03, TOILET, m.ceramic())])


def _vanity_sink(rng, m):
  w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.45, 0.55), rng.uniform(0.78, 0.85)
  parts = [_box(0, 0, 0, w, d, h, CABINET, _faces(m.furniture(), front=m.panel()))]
  basin = m.ceramic()
  parts.append(_box(0, 0.02, h, min(0.55, w - 0.1), d * 0.75, 0.06, SINK, basin))
  parts.append(_cylinder(0, -d / 2 + 0.07, h, 0.02, 0.2, OTHERPROP, m.metal()))
  return _Object("sink", SINK, w, d, h + 0.2, parts)


def _bathtub(rng, m):
  w, d, h = rng.uniform(1.5, 1.75), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6)
  white = m.ceramic()
  parts = [_box(0, 0, 0, w, d, h, BATHTUB, _faces(white, top=m.ceramic()))]
  if rng.random() < 0.6:  # shower curtain hanging along the front edge
    cw = w * rng.uniform(0.4, 1.0)
    cx = -w / 2 + cw / 2 if rng.random() < 0.5 else w / 2 - cw / 2
    parts.append(_box(cx, d / 2 - 0.02, h + 0.08, cw, 0.02, 1.9 - h - 0.08, SHOWER_CURTAIN, m.fabric()))
  return _Object("bathtub", BATHTUB, w, d, h, parts)


def _nightstand(rng, m):
  w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.62)
  return _Object("nightstand", OTHERFURNITURE, w, d, h,
                 [_box(0, 0, 0, w, d, h, OTHERFURNITURE, _faces(m.furniture(), front=m.panel()))])


def _ottoman(rng, m):
  r, h = rng.uniform(0.22, 0.35), rng.uniform(0.35, 0.45)
  return _Object("ottoman", OTHERFURNITURE, 2 * r, 2 * r, h, [_cylinder(0, 0, 0, r, h, OTHERFURNITURE, m.fabric())])


def _low_shelf(rng, m):
  w, d, h = rng.uniform(0.8, 1.6), rng.uniform(0.35, 0.5), rng.uniform(0.4, 0.7)
  return _Object("stand", OTHERFURNITURE, w, d, h, [_box(0, 0, 0, w, d, h, OTHERFURNITURE, m.furniture())])


def _floor_prop(rng, m):
  kind = _pick(rng, ["bin", "plant", "box", "lamp"])
  if kind == "bin":
    r, h = rng.uniform(0.12, 0.18), rng.uniform(0.3, 0.45)
    return _Object("trash can", OTHERPROP, 2 * r, 2 * r, h, [_cylinder(0, 0, 0, r, h, OTHERPROP, m.prop())])
  if kind == "plant":
    r, h = rng.uniform(0.12, 0.2), rng.uniform(0.25, 0.4)
    leaves = m.leaves()
    fh = rng.uniform(0.4, 0.9)
    return _Object("plant", OTHERPROP, 2 * r + 0.1, 2 * r + 0.1, h + fh, [
        _cylinder(0, 0, 0, r, h, OTHERPROP, m.prop()),
        _box(0, 0, h, 2 * r + 0.1, 2 * r + 0.1, fh, OTHERPROP, leaves, yaw=rng.uniform(0, np.pi))])
  if kind == "box":
    w, d, h = rng.uniform(0.25, 0.6), rng.uniform(0.25, 0.5), rng.uniform(0.2, 0.5)
    return _Object("box", BOX_PROP, w, d, h, [_box(0, 0, 0, w, d, h, BOX_PROP, m.prop())])
  h = rng.uniform(1.3, 1.7)
  return _Object("lamp", LAMP, 0.4, 0.4, h, [
      _cylinder(0, 0, 0, 0.15, 0.03, LAMP, m.metal()), _cylinder(0, 0, 0.03, 0.015, h - 0.33, LAMP, m.metal()),
      _cylinder(0, 0, h - 0.3, 0.2, 0.3, LAMP, m.fabric())])


def _tabletop_props(rng, m, width, depth, top_z, count):
  """Small props (boxes, cups, books, a monitor) standing on a top of size width x depth at height top_z."""
  parts = []
  for _ in range(count):
    kind = rng.choice(["box", "cup", "books", "monitor"], p=[0.35, 0.25, 0.25, 0.15])
    if kind == "cup":
      r = rng.uniform(0.03, 0.06)
      size, part = (2 * r, 2 * r), _cylinder(0, 0, top_z, r, rng.uniform(0.08, 0.2), OTHERPROP, m.prop())
    elif kind == "monitor":
      w = rng.uniform(0.45, 0.65)
      size, part = (w, 0.05), _box(0, 0, top_z + 0.1, w, 0.04, w * 0.6, TELEVISION,
                                   _faces(m.painted(), front=m.picture()))
    else:
      w, d, h = rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.3), rng.uniform(0.03, 0.25)
      label = BOOKS if kind == "books" else OTHERPROP
      size, part = (w, d), _box(0, 0, top_z, w, d, h, label, m.books() if kind == "books" else m.prop(),
                                yaw=rng.uniform(-0.5, 0.5))
    if size[0] > width - 0.05 or size[1] > depth - 0.05:
      continue
    x = rng.uniform(-width / 2 + size[0] / 2, width / 2 - size[0] / 2)
    y = rng.uniform(-depth / 2 + size[1] / 2, depth / 2 - size[1] / 2)
    part.center = (x, y, part.center[2])
    parts.append(part)
  return parts


# ----------------------------------------------------------------------------------------------------------------
# Layout


class _FloorPlan:
  """The room being furnished: a floor occupancy grid, occupied stretches of each wall, and the parts placed.

  Walls are numbered 0: y = 0, 1: x = Lx, 2: y = Ly, 3: x = 0. A wall object at position s along wall k has yaw
  k * pi / 2, so its local +x runs along the wall and its local +y points into the room.
  """

  CELL = 0.05

  def __init__(self, rng, room_size, materials):
    self.rng = rng
    self.size = room_size
    self.materials = materials
    lx, ly = room_size[0], room_size[1]
    nx, ny = int(np.ceil(lx / self.CELL)), int(np.ceil(ly / self.CELL))
    self._xs = (np.arange(nx) + 0.5) * self.CELL
    self._ys = (np.arange(ny) + 0.5) * self.CELL
    self.occupied = np.zeros((ny, nx), bool)
    self.path_distance = np.full((ny, nx), np.inf)  # horizontal distance to the camera path
    self.wall_spans = {k: [] for k in range(4)}  # (s0, s1, z0, z1)
    self.parts = []  # (part, world x, world y, yaw)
    self.objects = []

  def wall_length(self, wall):
    return self.size[0] if wall % 2 == 0 else self.size[1]

  def wall_frame(self, wall, s, offset):
    """World (x, y) of the point at s along `wall`, `offset` into the room, and the wall's yaw."""
    lx, ly = self.size[0], self.size[1]
    x, y = [(s, offset), (lx - offset, s), (lx - s, ly - offset), (offset, ly - s)][wall]
    return x, y, wall * np.pi / 2

  def _cells(self, x, y, half_w, half_d, yaw, pad):
    c, s = np.cos(yaw), np.sin(yaw)
    reach = np.hypot(half_w, half_d) + pad
    ix = slice(max(0, int((x - reach) / self.CELL)), int((x + reach) / self.CELL) + 1)
    iy = slice(max(0, int((y - reach) / self.CELL)), int((y + reach) / self.CELL) + 1)
    dx = self._xs[ix][None, :] - x
    dy = self._ys[iy][:, None] - y
    inside = (np.abs(c * dx + s * dy) <= half_w + pad) & (np.abs(-s * dx + c * dy) <= half_d + pad)
    return iy, ix, inside

  def _inside_room(self, x, y, half_w, half_d, yaw, margin=0.0):
    c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
    ex, ey = c * half_w + s * half_d, s * half_w + c * half_d
    return (x - ex >= margin and x + ex <= self.size[0] - margin and y - ey >= margin and
            y + ey <= self.size[1] - margin)

  def floor_free(self, x, y, width, depth, yaw, height, pad=0.0, margin=0.01):
    """Whether the rotated rectangle lies inside the room, `margin` from the walls, on unoccupied floor, and clear
    of the camera path (by less for objects lower than the camera)."""
    if not self._inside_room(x, y, width / 2, depth / 2, yaw, margin):
      return False
    iy, ix, inside = self._cells(x, y, width / 2, depth / 2, yaw, pad)
    clearance = LOW_OBJECT_CLEARANCE if height <= LOW_OBJECT_HEIGHT else OBJECT_CLEARANCE
    blocked = self.occupied[iy, ix] | (self.path_distance[iy, ix] < clearance)
    return not np.any(blocked & inside)

  def occupy_floor(self, x, y, width, depth, yaw, pad=0.0):
    iy, ix, inside = self._cells(x, y, width / 2, depth / 2, yaw, pad)
    self.occupied[iy, ix] |= inside

  def set_path(self, points):
    """Records the horizontal distance of every floor cell to the camera path `points` [N, 2]."""
    gx, gy = np.meshgrid(self._xs, self._ys)
    d2 = np.full(gx.shape, np.inf)
    for chunk in np.array_split(points, max(1, len(points) // 64)):
      d2 = np.minimum(d2, np.min((gx[..., None] - chunk[:, 0]) ** 2 + (gy[..., None] - chunk[:, 1]) ** 2, axis=-1))
    self.path_distance = np.sqrt(d2)

  def wall_free(self, wall, s0, s1, z0, z1, gap=0.05):
    return all(s1 + gap <= a or s0 - gap >= b or z1 <= c or z0 >= d for a, b, c, d in self.wall_spans[wall])

  def add(self, obj, x, y, yaw):
    for part in obj.parts:
      self.parts.append((part, x, y, yaw))
    self.objects.append((obj.name, obj.label))

  def place_against_wall(self, obj, walls=None, attempts=60, gap=0.01, pad=0.0):
    """Puts `obj` with its back to a wall; returns (wall, s) or None when no free spot was found."""
    for _ in range(attempts):
      wall = int(self.rng.integers(4)) if walls is None else int(walls[self.rng.integers(len(walls))])
      length = self.wall_length(wall)
      if obj.width > length - 0.1:
        continue
      s = self.rng.uniform(obj.width / 2 + 0.05, length - obj.width / 2 - 0.05)
      if not self.wall_free(wall, s - obj.width / 2, s + obj.width / 2, 0.0, obj.top):
        continue
      x, y, yaw = self.wall_frame(wall, s, gap + obj.depth / 2)
      if not self.floor_free(x, y, obj.width, obj.depth, yaw, obj.top, pad):
        continue
      self.occupy_floor(x, y, obj.width, obj.depth, yaw)
      self.wall_spans[wall].append((s - obj.width / 2, s + obj.width / 2, 0.0, obj.top))
      self.add(obj, x, y, yaw)
      return wall, s
    return None

  def place_free(self, obj, attempts=60, pad=0.05, yaw=None):
    """Puts `obj` anywhere on free floor; returns (x, y, yaw) or None."""
    for _ in range(attempts):
      angle = self.rng.uniform(-np.pi, np.pi) if yaw is None else yaw
      if yaw is None and self.rng.random() < 0.6:
        angle = self.rng.integers(4) * np.pi / 2 + self.rng.uniform(-0.15, 0.15)
      x = self.rng.uniform(0.0, self.size[0])
      y = self.rng.uniform(0.0, self.size[1])
      if self.floor_free(x, y, obj.width, obj.depth, angle, obj.top, pad):
        self.occupy_floor(x, y, obj.width, obj.depth, angle)
        self.add(obj, x, y, angle)
        return x, y, angle
    return None

  def place_near(self, obj, x, y, yaw, pad=0.02):
    if self.floor_free(x, y, obj.width, obj.depth, yaw, obj.top, pad):
      self.occupy_floor(x, y, obj.width, obj.depth, yaw)
      self.add(obj, x, y, yaw)
      return True
    return False

  def place_panel(self, name, label, width, height, z0, thickness, materials, walls=None, attempts=30,
                  reaches_floor=False, extra_parts=()):
    """A thin panel on a wall (door, window, picture, curtain); returns (wall, s) or None."""
    for _ in range(attempts):
      wall = int(self.rng.integers(4)) if walls is None else int(walls[self.rng.integers(len(walls))])
      length = self.wall_length(wall)
      if width > length - 0.3:
        continue
      s = self.rng.uniform(width / 2 + 0.15, length - width / 2 - 0.15)
      if not self.wall_free(wall, s - width / 2, s + width / 2, z0, z0 + height):
        continue
      x, y, yaw = self.wall_frame(wall, s, thickness / 2)
      if reaches_floor and not self.floor_free(x, y, width, thickness, yaw, z0 + height, margin=-1e-6):
        continue
      self.wall_spans[wall].append((s - width / 2, s + width / 2, z0, z0 + height))
      if reaches_floor:
        self.occupy_floor(x, y, width, thickness, yaw)
      parts = [_box(0, 0, z0, width, thickness, height, label, materials)] + list(extra_parts)
      self.add(_Object(name, label, width, thickness, height, parts), x, y, yaw)
      return wall, s
    return None


def _add_door(plan):
  rng, m = plan.rng, plan.materials
  w, h = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1)
  knob = _box(w / 2 - 0.1, 0.04, 1.0, 0.03, 0.05, 0.03, DOOR, m.metal())
  placed = plan.place_panel("door", DOOR, w, h, 0.0, 0.04, _faces(m.wood() if rng.random() < 0.5 else m.painted(),
                                                                    front=m.panel()),
                            reaches_floor=True, extra_parts=[knob])
  if placed:  # keep the swing area free
    wall, s = placed
    x, y, yaw = plan.wall_frame(wall, s, 0.45)
    plan.occupy_floor(x, y, w, 0.8, yaw)


def _add_window(plan, curtain_probability):
  rng, m = plan.rng, plan.materials
  lz = plan.size[2]
  w, h, z0 = rng.uniform(0.8, 1.8), rng.uniform(1.0, 1.4), rng.uniform(0.8, 1.0)
  h = min(h, lz - z0 - 0.25)
  frame = m.painted()
  glass = m.glass()
  parts = [_box(0, 0.02, z0 - 0.04, w + 0.1, 0.1, 0.04, WINDOW, frame),  # sill
           _box(0, 0.0, z0 + h / 2 - 0.025, w, 0.05, 0.05, WINDOW, frame)]  # transom
  if w > 1.2:
    parts.append(_box(0, 0.0, z0, 0.05, 0.05, h, WINDOW, frame))  # mullion
  placed = plan.place_panel("window", WINDOW, w, h, z0, 0.03, _faces(frame, front=glass), extra_parts=parts)
  if placed and rng.random() < curtain_probability:
    wall, s = placed
    fabric = m.fabric()
    for side in (-1, 1):
      if rng.random() < 0.85:
        cw = rng.uniform(0.3, 0.6)
        cs = s + side * (w / 2 + cw / 2 - rng.uniform(0.05, 0.2))
        z_top = lz - rng.uniform(0.05, 0.25)
        z_bottom = rng.uniform(0.02, 0.1) if rng.random() < 0.7 else z0 - 0.1
        if cs - cw / 2 < 0.05 or cs + cw / 2 > plan.wall_length(wall) - 0.05:
          continue
        x, y, yaw = plan.wall_frame(wall, cs, 0.13)
        if z_bottom < 0.2:
          if not plan.floor_free(x, y, cw, 0.06, yaw, z_top):
            continue
          plan.occupy_floor(x, y, cw, 0.06, yaw)
        plan.wall_spans[wall].append((cs - cw / 2, cs + cw / 2, z_bottom, z_top))
        plan.add(_Object("curtain", CURTAIN, cw, 0.06, z_top - z_bottom,
                         [_box(0, 0, z_bottom, cw, 0.06, z_top - z_bottom, CURTAIN, fabric)]), x, y, yaw)


def _add_picture(plan):
  rng, m = plan.rng, plan.materials
  w, h = rng.uniform(0.3, 1.0), rng.uniform(0.25, 0.8)
  z0 = rng.uniform(1.3, 1.7) - h / 2
  plan.place_panel("picture", PICTURE, w, h, z0, rng.uniform(0.02, 0.04), _faces(m.furniture(), front=m.picture()))


def _add_wall_panel(plan, name, label, width, height, z_center, thickness, material):
  """A wall-mounted flat object of a background class (whiteboard, television, mirror)."""
  m = plan.materials
  plan.place_panel(name, label, width, height, z_center - height / 2, thickness, _faces(m.painted(), front=material))


def _add_rug(plan):
  """A floor mat (NYU40 20, background); flat, so it may lie under the camera path and furniture."""
  rng, m = plan.rng, plan.materials
  lx, ly = plan.size[0], plan.size[1]
  w, d = rng.uniform(1.0, min(3.0, lx - 0.6)), rng.uniform(0.8, min(2.2, ly - 0.6))
  x, y = rng.uniform(0.3 + w / 2, lx - 0.3 - w / 2), rng.uniform(0.3 + d / 2, ly - 0.3 - d / 2)
  plan.add(_Object("rug", FLOOR_MAT, w, d, 0.01, [_box(0, 0, 0, w, d, 0.01, FLOOR_MAT, m.fabric())]), x, y, 0.0)


def _count(rng, probability, most=1):
  """0 with probability 1 - p, else 1..most uniformly."""
  return int(rng.integers(1, most + 1)) if rng.random() < probability else 0


def _table_with_chairs(plan, coffee=False, chairs=(0, 4)):
  rng, m = plan.rng, plan.materials
  table = _table(rng, m, coffee=coffee)
  if rng.random() < 0.7:
    table.parts += _tabletop_props(rng, m, table.width, table.depth, table.height, int(rng.integers(0, 4)))
  placed = plan.place_free(table, pad=0.3 if not coffee else 0.1)
  if not placed or coffee:
    return
  x, y, yaw = placed
  c, s = np.cos(yaw), np.sin(yaw)
  sides = [(0, table.depth / 2 + 0.25, np.pi), (0, -table.depth / 2 - 0.25, 0.0),
           (table.width / 2 + 0.25, 0, np.pi / 2), (-table.width / 2 - 0.25, 0, -np.pi / 2)]
  for lx, ly, face in sides[:int(rng.integers(chairs[0], chairs[1] + 1))]:
    chair = _chair(rng, m)
    # The chair's front (+y) faces the table: its yaw is the table's plus `face`.
    plan.place_near(chair, x + c * lx - s * ly, y + s * lx + c * ly, yaw + face + rng.uniform(-0.3, 0.3))


def _desk_with_chair(plan):
  rng, m = plan.rng, plan.materials
  desk = _desk(rng, m)
  desk.parts += _tabletop_props(rng, m, desk.width - 0.1, desk.depth - 0.1, desk.height, int(rng.integers(1, 4)))
  placed = plan.place_against_wall(desk)
  if placed and rng.random() < 0.85:
    wall, s = placed
    chair = _chair(rng, m)
    x, y, yaw = plan.wall_frame(wall, s + rng.uniform(-0.2, 0.2), 0.01 + desk.depth + 0.1)
    plan.place_near(chair, x, y, yaw + np.pi + rng.uniform(-0.4, 0.4))


def _repeat(n, fn, *args):
  for _ in range(n):
    fn(*args)


def _furnish(plan, room_type):
  rng, m = plan.rng, plan.materials
  against_wall = lambda obj: plan.place_against_wall(obj)  # noqa: E731
  # Openings and wall decoration first, so furniture does not block doors.
  door_probability = {"bathroom": 0.35, "kitchen": 0.3}.get(room_type, 0.35)
  _repeat(_count(rng, door_probability), _add_door, plan)
  window_probability = 0.25 if room_type == "bathroom" else 0.75
  _repeat(_count(rng, window_probability, 2), _add_window, plan, 0.2 if room_type == "kitchen" else 0.6)

  if room_type == "bedroom":
    if rng.random() < 0.95:
      against_wall(_bed(rng, m))
    _repeat(_count(rng, 0.7, 2), lambda: against_wall(_nightstand(rng, m)))
    _repeat(_count(rng, 0.7, 2), lambda: against_wall(_cabinet(rng, m)))
    _repeat(_count(rng, 0.4), _desk_with_chair, plan)
    _repeat(_count(rng, 0.35), lambda: against_wall(_bookshelf(rng, m)))
    _repeat(_count(rng, 0.3), lambda: plan.place_free(_chair(rng, m)))
    _repeat(_count(rng, 0.3), lambda: plan.place_free(_ottoman(rng, m)))
    _repeat(_count(rng, 0.4), _add_rug, plan)
  elif room_type == "living_room":
    if rng.random() < 0.9:
      against_wall(_sofa(rng, m))
    _repeat(_count(rng, 0.3), lambda: against_wall(_sofa(rng, m)))
    _repeat(_count(rng, 0.8), _table_with_chairs, plan, True)
    _repeat(_count(rng, 0.4), _table_with_chairs, plan, False, (1, 4))
    _repeat(_count(rng, 0.5, 2), lambda: plan.place_free(_chair(rng, m)))
    _repeat(_count(rng, 0.5, 2), lambda: against_wall(_bookshelf(rng, m)))
    _repeat(_count(rng, 0.4), lambda: against_wall(_cabinet(rng, m)))
    _repeat(_count(rng, 0.5), lambda: against_wall(_low_shelf(rng, m)))
    _repeat(_count(rng, 0.4), lambda: plan.place_free(_ottoman(rng, m)))
    _repeat(_count(rng, 0.5), _add_wall_panel, plan, "television", TELEVISION, rng.uniform(0.8, 1.4),
            rng.uniform(0.5, 0.8), rng.uniform(1.1, 1.5), 0.06, m.picture())
    _repeat(_count(rng, 0.5), _add_rug, plan)
  elif room_type == "office":
    _repeat(int(rng.integers(1, 4)), _desk_with_chair, plan)
    _repeat(_count(rng, 0.4), _table_with_chairs, plan, False, (2, 4))
    _repeat(_count(rng, 0.7, 3), lambda: against_wall(_cabinet(rng, m)))
    _repeat(_count(rng, 0.6, 3), lambda: against_wall(_bookshelf(rng, m)))
    _repeat(_count(rng, 0.5, 3), lambda: plan.place_free(_chair(rng, m)))
    _repeat(_count(rng, 0.3), lambda: against_wall(_low_shelf(rng, m)))
    _repeat(_count(rng, 0.4), _add_wall_panel, plan, "whiteboard", WHITEBOARD, rng.uniform(1.0, 2.0),
            rng.uniform(0.8, 1.2), rng.uniform(1.3, 1.6), 0.03, m.ceramic())
    _repeat(_count(rng, 0.3), _add_rug, plan)
  elif room_type == "kitchen":
    _add_kitchen_counter(plan)
    _repeat(_count(rng, 0.7), lambda: against_wall(_refrigerator(rng, m)))
    _repeat(_count(rng, 0.6), _table_with_chairs, plan, False, (1, 4))
    _repeat(_count(rng, 0.4), lambda: against_wall(_cabinet(rng, m, tall=True)))
    _repeat(_count(rng, 0.3), _island, plan)
  else:  # bathroom
    _repeat(_count(rng, 0.6), lambda: against_wall(_bathtub(rng, m)))
    _repeat(_count(rng, 0.85), lambda: against_wall(_toilet(rng, m)))
    _repeat(_count(rng, 0.8), lambda: against_wall(_vanity_sink(rng, m)))
    _repeat(_count(rng, 0.4), lambda: against_wall(_cabinet(rng, m, tall=False)))
    _repeat(_count(rng, 0.6), _add_wall_panel, plan, "mirror", MIRROR, rng.uniform(0.5, 1.0), rng.uniform(0.6, 0.9),
            rng.uniform(1.4, 1.6), 0.02, m.glass())
  _fill(plan, room_type)
  _repeat(_count(rng, 0.8, 4), lambda: plan.place_free(_floor_prop(rng, m), pad=0.02))
  _repeat(_count(rng, 0.3, 2), _add_picture, plan)


# Furniture drawn, by weight, to fill each room type's walls and floor after its characteristic pieces.
_WALL_FILLERS = {
    "bedroom": ((1.0, _cabinet), (2.0, _nightstand), (1.0, _bookshelf), (1.0, "desk"), (1.0, _low_shelf)),
    "living_room": ((1.5, _bookshelf), (1.0, _cabinet), (2.0, _low_shelf), (1.0, _sofa), (1.0, _chair)),
    "office": ((1.0, _cabinet), (2.0, _bookshelf), (2.5, "desk"), (1.0, _low_shelf)),
    "kitchen": ((2.0, _cabinet), (1.0, _low_shelf)),
    "bathroom": ((1.0, _cabinet), (1.0, _low_shelf)),
}
_FREE_FILLERS = {
    "bedroom": ((1.0, _chair), (1.0, _ottoman)),
    "living_room": ((2.0, _chair), (1.0, _ottoman), (1.0, "table")),
    "office": ((3.0, _chair), (1.0, "table")),
    "kitchen": ((2.0, _chair), (1.0, "table")),
    "bathroom": (),
}


def _fill(plan, room_type):
  """Adds wall furniture until a random share (35-70 %) of the perimeter is taken, then a few free pieces."""
  rng, m = plan.rng, plan.materials

  def draw(fillers):
    weights = np.array([w for w, _ in fillers])
    return fillers[int(rng.choice(len(fillers), p=weights / weights.sum()))][1]

  target = rng.uniform(0.35, 0.7) * 2 * (plan.size[0] + plan.size[1])
  for _ in range(30):
    taken = sum(s1 - s0 for spans in plan.wall_spans.values() for s0, s1, z0, _ in spans if z0 < 0.05)
    if taken >= target:
      break
    builder = draw(_WALL_FILLERS[room_type])
    if builder == "desk":
      _desk_with_chair(plan)
    else:
      plan.place_against_wall(builder(rng, m))
  if _FREE_FILLERS[room_type]:
    for _ in range(int(rng.integers(0, 5))):
      builder = draw(_FREE_FILLERS[room_type])
      if builder == "table":
        _table_with_chairs(plan, False, (1, 4))
      else:
        plan.place_free(builder(rng, m))


def _island(plan):
  """A free-standing kitchen island: cabinet base and counter top."""
  rng, m = plan.rng, plan.materials
  w, d, h = rng.uniform(1.0, 1.8), rng.uniform(0.6, 0.9), rng.uniform(0.88, 0.92)
  parts = [_box(0, 0, 0, w - 0.06, d - 0.06, h - 0.04, CABINET, _faces(m.furniture(), front=m.panel())),
           _box(0, 0, h - 0.04, w, d, 0.04, COUNTER, m.painted())]
  parts += _tabletop_props(rng, m, w - 0.1, d - 0.1, h, int(rng.integers(0, 3)))
  plan.place_free(_Object("counter", COUNTER, w, d, h, parts), pad=0.3)


def _add_kitchen_counter(plan):
  if plan.rng.random() >= 0.9:
    return
  rng, m = plan.rng, plan.materials
  w, d, h = rng.uniform(1.2, 3.0), 0.62, rng.uniform(0.88, 0.92)
  top = m.stone()
  front = m.panel()
  parts = [_box(0, -0.02, 0, w - 0.02, d - 0.06, h - 0.04, CABINET, _faces(m.furniture(), front=front)),
           _box(0, 0, h - 0.04, w, d, 0.04, COUNTER, top)]
  if rng.random() < 0.6:  # sink in the counter
    sx = rng.uniform(-w / 2 + 0.35, w / 2 - 0.35)
    metal = m.metal()
    parts += [_box(sx, 0.02, h, 0.55, 0.42, 0.015, SINK, metal),
              _cylinder(sx, -d / 2 + 0.08, h, 0.02, 0.3, OTHERPROP, metal)]
  parts += _tabletop_props(rng, m, w - 0.2, d - 0.15, h, int(rng.integers(0, 4)))
  counter = _Object("counter", COUNTER, w, d, h + 0.3, parts)
  placed = plan.place_against_wall(counter)
  if placed and rng.random() < 0.7:  # wall cabinets above it
    wall, s = placed
    cab_z0, cab_h, cab_d = 1.45, min(0.75, plan.size[2] - 1.5), 0.35
    if plan.wall_free(wall, s - w / 2, s + w / 2, cab_z0, cab_z0 + cab_h):
      x, y, yaw = plan.wall_frame(wall, s, 0.01 + cab_d / 2)
      plan.wall_spans[wall].append((s - w / 2, s + w / 2, cab_z0, cab_z0 + cab_h))
      plan.add(_Object("cabinet", CABINET, w, cab_d, cab_h,
                       [_box(0, 0, cab_z0, w, cab_d, cab_h, CABINET, _faces(m.furniture(), front=m.panel()))]),
               x, y, yaw)


# ----------------------------------------------------------------------------------------------------------------
# The scene


def sample_room_size(rng, room_type):
  if room_type == "bathroom":
    return (rng.uniform(2.6, 3.6), rng.uniform(2.4, 3.2), rng.uniform(2.4, 2.8))
  return (rng.uniform(3.4, 6.5), rng.uniform(3.0, 5.5), rng.uniform(2.5, 3.0))


def sample_scene(rng, height, width, num_frames, fps, motion="handheld"):
  """A random furnished room with a camera trajectory of `num_frames` frames at `fps`.

  Args:
    rng: numpy.random.Generator, the only source of randomness.
    height, width: image size in pixels.
    num_frames: number of camera poses.
    fps: frame rate (Hz); sets the motion between frames.
    motion: one of `synthetic_camera.MOTIONS`: "handheld" (`synthetic_camera.sample_trajectory`) or "dolly"
      (`synthetic_camera.sample_dolly_trajectory`).

  Returns:
    A `Scene`.
  """
  room_type = str(rng.choice(ROOM_TYPES, p=ROOM_TYPE_PROBABILITIES))
  room_size = sample_room_size(rng, room_type)
  intrinsics = synthetic_camera.sample_intrinsics(rng, height, width)
  trajectory = (synthetic_camera.sample_dolly_trajectory if motion == "dolly" else synthetic_camera.sample_trajectory)
  poses, path = trajectory(rng, room_size, num_frames, fps)
  materials = synthetic_textures.Materials(rng)
  plan = _FloorPlan(rng, room_size, materials)
  plan.set_path(path)
  room_materials = (materials.wall(),) * 4 + (materials.floor(), materials.ceiling())
  if rng.random() < 0.3:  # an accent wall
    accent = int(rng.integers(4))
    room_materials = tuple(materials.wall() if i == accent else mat for i, mat in enumerate(room_materials))
  _furnish(plan, room_type)

  lx, ly, lz = room_size
  primitives = [Primitive(BOX, (lx / 2, ly / 2, lz / 2), (lx / 2, ly / 2, lz / 2), 0.0,
                          (WALL,) * 4 + (FLOOR, CEILING), room_materials)]
  for part, x, y, yaw in plan.parts:
    c, s = np.cos(yaw), np.sin(yaw)
    px, py, pz = part.center
    center = (float(x + c * px - s * py), float(y + s * px + c * py), float(pz))
    part_yaw = 0.0 if part.kind == CYLINDER else float(yaw + part.yaw)
    primitives.append(Primitive(part.kind, center, tuple(float(h) for h in part.half_size), part_yaw,
                                (part.label,) * NUM_FACES, part.materials))
  light = (float(lx / 2 + rng.uniform(-0.5, 0.5)), float(ly / 2 + rng.uniform(-0.5, 0.5)), float(lz - 0.3))
  return Scene(room_type=room_type, room_size=tuple(float(v) for v in room_size), primitives=tuple(primitives),
               materials=tuple(materials.materials), objects=tuple(plan.objects), height=int(height), width=int(width),
               intrinsics=intrinsics, poses=poses, fps=float(fps), light_position=light,
               texture_seed=int(rng.integers(2**31)))

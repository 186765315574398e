"""Procedural textures and materials of the synthetic scenes.

`pattern_tiles` draws one periodic texture tile per entry of PATTERNS (plaster, wood, planks, tiles, fabric, ...) from
smooth periodic value noise. A `Material` stretches one pattern over a surface at a given texel size and colours it
between two colours, so texture is a function of the 3-D surface point and stays attached to the surface in every
view. `Materials` draws materials from families (wall paint, floor, wood, fabric, metal, ...) and collects them.

Everything random is drawn from the `numpy.random.Generator` (or seed) passed in.
"""

import colorsys
import dataclasses

import numpy as np

# Texture patterns; `pattern_tiles` draws one periodic tile of each.
PATTERNS = ("plaster", "wood", "planks", "tiles", "fabric", "stripes", "books", "smooth", "checker")
TILE_SIZE = 256


@dataclasses.dataclass(frozen=True)
class Material:
  """A procedural surface material.

  pattern: index into PATTERNS.
  texel_size: metres per texel of the pattern tile at full detail.
  color0, color1: RGB in [0, 1]; the surface colour is color0 + pattern * (color1 - color0), pattern in [0, 1].
  offset: (u, v) shift of the pattern in metres, so objects sharing a pattern do not look alike.
  """
  pattern: int
  texel_size: float
  color0: tuple
  color1: tuple
  offset: tuple


def _periodic_value_noise(rng, size, cells):
  """[size, size] smooth periodic value noise in [0, 1] with `cells` lattice cells per period (cells divides size)."""
  lattice = rng.random((cells, cells))
  coords = np.arange(size) * (cells / size)
  i0 = np.floor(coords).astype(np.int64)
  f = coords - i0
  w = f * f * (3.0 - 2.0 * f)
  i0 %= cells
  i1 = (i0 + 1) % cells
  rows = lattice[i0] * (1.0 - w)[:, None] + lattice[i1] * w[:, None]
  return rows[:, i0] * (1.0 - w) + rows[:, i1] * w


def _fbm(rng, size, base_cells, octaves, persistence=0.55):
  """Multi-octave periodic value noise, normalised to [0, 1]."""
  total = np.zeros((size, size))
  amplitude = 1.0
  cells = base_cells
  for _ in range(octaves):
    if cells > size:
      break
    total += amplitude * _periodic_value_noise(rng, size, cells)
    amplitude *= persistence
    cells *= 2
  return _normalise(total)


def _normalise(tile):
  lo, hi = tile.min(), tile.max()
  return (tile - lo) / max(hi - lo, 1e-9)


def _random_partition(rng, total, low, high):
  """Integer widths in [low, high] summing to `total` (the last one absorbs the remainder)."""
  widths = []
  while sum(widths) < total:
    widths.append(int(rng.integers(low, high + 1)))
  widths[-1] -= sum(widths) - total
  if widths[-1] < low // 2 and len(widths) > 1:
    last = widths.pop()
    widths[-1] += last
  return widths


def _stripe_values(rng, size, low, high, value_low, value_high):
  """[size] values constant over random-width stripes, and [size] bool marking each stripe's first texel."""
  values = np.zeros(size)
  starts = np.zeros(size, bool)
  position = 0
  for width in _random_partition(rng, size, low, high):
    values[position:position + width] = rng.uniform(value_low, value_high)
    starts[position] = True
    position += width
  return values, starts


def pattern_tiles(seed, size=TILE_SIZE):
  """One periodic [size, size] tile per entry of PATTERNS, values in [0, 1] (float32 [len(PATTERNS), size, size]).

  Tile axis 1 is the surface coordinate u (horizontal along walls), axis 0 is v (vertical on walls). Every pattern
  has detail down to the texel (fine noise octaves, weave, grout lines), so surfaces keep texture close up.
  """
  rng = np.random.default_rng(seed)
  v, u = np.mgrid[0:size, 0:size] / size  # [0, 1) over one period
  fine = _fbm(rng, size, 16, 5)
  tiles = {}
  tiles["plaster"] = 0.55 * _fbm(rng, size, 4, 4, 0.5) + 0.45 * _fbm(rng, size, 32, 4, 0.8)
  grain = _fbm(rng, size, 4, 3)
  rings = 0.5 + 0.5 * np.sin(2 * np.pi * (8 * v + 1.5 * grain))
  tiles["wood"] = 0.65 * rings ** 2 + 0.35 * fine
  # Planks: 8 rows along u, each split into planks with their own tone, grain and dark joints.
  rows = 8
  row_height = size // rows
  planks = np.zeros((size, size))
  for r in range(rows):
    tones, joints = _stripe_values(rng, size, size // 3, size, 0.35, 0.75)
    shift = int(rng.integers(size))
    tones, joints = np.roll(tones, shift), np.roll(joints, shift)
    block = np.broadcast_to(tones, (row_height, size)).copy()
    block[:, joints | np.roll(joints, 1)] = 0.1
    block[:2] = 0.1
    planks[r * row_height:(r + 1) * row_height] = block
  plank_grain = 0.5 + 0.5 * np.sin(2 * np.pi * (32 * v + 0.8 * grain))
  tiles["planks"] = planks * (0.75 + 0.25 * plank_grain) + 0.1 * fine
  # Tiles: 4 x 4 tiles with grout lines and a slightly different tone each.
  count = 4
  step = size // count
  tone = rng.uniform(0.6, 0.9, (count, count))
  ti = (np.arange(size) // step)
  tile_img = tone[ti][:, ti]
  grout = ((np.arange(size) % step) < 3)
  tile_img = np.where(grout[:, None] | grout[None, :], 0.05, tile_img)
  tiles["tiles"] = 0.85 * tile_img + 0.15 * fine
  weave = 0.5 + 0.25 * (np.sin(2 * np.pi * 48 * u) + np.sin(2 * np.pi * 48 * v))
  tiles["fabric"] = 0.55 * weave + 0.45 * _fbm(rng, size, 8, 6)
  stripe_values, _ = _stripe_values(rng, size, 6, 40, 0.2, 1.0)
  tiles["stripes"] = 0.75 * stripe_values[None, :] + 0.25 * fine
  spines, gaps = _stripe_values(rng, size, 5, 14, 0.0, 1.0)
  books = np.broadcast_to(spines, (size, size)).copy()
  books[:, gaps] = 0.0
  band = (np.arange(size) % 32) < 2  # titles / bands across the spines
  books[band] = 0.5 * books[band] + 0.5
  tiles["books"] = 0.85 * books + 0.15 * fine
  tiles["smooth"] = 0.5 * _fbm(rng, size, 2, 4) + 0.5 * fine
  checks = 8
  tiles["checker"] = 0.8 * ((np.floor(u * checks) + np.floor(v * checks)) % 2) + 0.2 * fine
  return np.stack([_normalise(tiles[name]) for name in PATTERNS]).astype(np.float32)


def _pick(rng, options):
  """One of `options`, uniformly (Generator.choice is slow for the many small draws of a layout)."""
  return options[int(rng.integers(len(options)))]


def _hsv(h, s, v):
  return tuple(float(c) for c in colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


class Materials:
  """Collects materials; each style method (wall, floor, wood, fabric, ...) draws one from a family and returns its
  index into `materials`."""

  def __init__(self, rng):
    self._rng = rng
    self.materials = []

  def add(self, pattern, texel_size, color0, color1):
    offset = tuple(float(o) for o in self._rng.uniform(0.0, 5.0, 2))
    self.materials.append(Material(PATTERNS.index(pattern), float(texel_size), color0, color1, offset))
    return len(self.materials) - 1

  def _two_tone(self, pattern, texel_size, h, s, v, contrast):
    return self.add(pattern, texel_size, _hsv(h, s, v * (1.0 - contrast / 2)),
                    _hsv(h, s * 0.8, v * (1.0 + contrast / 2)))

  def _drawn_two_tone(self, pattern, texel_size, hue, saturation, value, contrast):
    """A `_two_tone` material with texel size, hue, saturation and value drawn uniformly, in that order, from the
    (low, high) ranges given; hue None: any hue."""
    r = self._rng
    return self._two_tone(pattern, r.uniform(*texel_size), r.random() if hue is None else r.uniform(*hue),
                          r.uniform(*saturation), r.uniform(*value), contrast)

  def wall(self):
    r = self._rng
    pattern = _pick(r, ["plaster", "plaster", "stripes", "fabric", "smooth"])
    return self._two_tone(pattern, r.uniform(0.003, 0.006), r.random(), r.uniform(0.0, 0.3), r.uniform(0.65, 0.9),
                          r.uniform(0.3, 0.45))

  def floor(self):
    kind = self._rng.choice(["planks", "tiles", "carpet"], p=[0.45, 0.3, 0.25])
    if kind == "planks":
      return self._drawn_two_tone("planks", (0.003, 0.005), (0.05, 0.1), (0.4, 0.7), (0.4, 0.75), 0.6)
    if kind == "tiles":
      return self._drawn_two_tone("tiles", (0.004, 0.008), None, (0.0, 0.2), (0.5, 0.85), 0.6)
    return self._drawn_two_tone("fabric", (0.002, 0.004), None, (0.2, 0.5), (0.3, 0.6), 0.5)

  def ceiling(self):
    return self._drawn_two_tone("plaster", (0.004, 0.008), None, (0.0, 0.06), (0.8, 0.92), 0.2)

  def wood(self):
    return self._drawn_two_tone("wood", (0.002, 0.005), (0.04, 0.11), (0.35, 0.7), (0.3, 0.8), 0.5)

  def painted(self):
    pattern = _pick(self._rng, ["smooth", "plaster"])
    return self._drawn_two_tone(pattern, (0.002, 0.005), None, (0.0, 0.35), (0.2, 0.95), 0.3)

  def panel(self):
    """Cabinet and door fronts: a grid of panels."""
    if self._rng.random() < 0.5:
      return self._drawn_two_tone("tiles", (0.002, 0.004), (0.04, 0.11), (0.35, 0.7), (0.35, 0.8), 0.5)
    return self._drawn_two_tone("tiles", (0.002, 0.004), None, (0.0, 0.3), (0.4, 0.95), 0.35)

  def furniture(self):
    return self.wood() if self._rng.random() < 0.6 else self.painted()

  def fabric(self):
    pattern = _pick(self._rng, ["fabric", "fabric", "stripes", "checker"])
    return self._drawn_two_tone(pattern, (0.0015, 0.003), None, (0.15, 0.65), (0.3, 0.85), 0.45)

  def metal(self):
    return self._drawn_two_tone("smooth", (0.002, 0.004), (0.5, 0.65), (0.0, 0.08), (0.55, 0.85), 0.25)

  def ceramic(self):
    return self._drawn_two_tone("smooth", (0.002, 0.004), (0.5, 0.65), (0.0, 0.05), (0.85, 0.95), 0.15)

  def glass(self):
    return self._drawn_two_tone("plaster", (0.008, 0.015), (0.53, 0.6), (0.1, 0.35), (0.85, 0.98), 0.3)

  def picture(self):
    r = self._rng
    pattern = _pick(r, ["plaster", "checker", "stripes", "wood"])
    return self.add(pattern, r.uniform(0.001, 0.003), _hsv(r.random(), r.uniform(0.3, 0.9), r.uniform(0.1, 0.5)),
                    _hsv(r.random(), r.uniform(0.3, 0.9), r.uniform(0.6, 1.0)))

  def books(self):
    r = self._rng
    return self.add("books", r.uniform(0.002, 0.003), _hsv(r.random(), r.uniform(0.4, 0.9), r.uniform(0.1, 0.3)),
                    _hsv(r.random(), r.uniform(0.4, 0.9), r.uniform(0.6, 0.95)))

  def stone(self):
    """Counter tops: a nearly grey plaster pattern from dark to light, like stone."""
    r = self._rng
    return self.add("plaster", r.uniform(0.002, 0.004), _hsv(r.random(), r.uniform(0, 0.2), r.uniform(0.2, 0.5)),
                    _hsv(r.random(), r.uniform(0, 0.2), r.uniform(0.6, 0.9)))

  def leaves(self):
    """Plant foliage: a plaster pattern between a dark and a light green."""
    r = self._rng
    return self.add("plaster", 0.003, _hsv(r.uniform(0.22, 0.38), 0.7, 0.2), _hsv(r.uniform(0.22, 0.38), 0.6, 0.6))

  def prop(self):
    return self._drawn_two_tone(_pick(self._rng, list(PATTERNS)), (0.001, 0.004), None, (0.2, 0.9), (0.2, 0.95), 0.5)

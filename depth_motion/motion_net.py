"""The motion network of Depth from Videos in the Wild: egomotion, an optional residual translation field, intrinsics.

  (image_i, image_j [, depth_i, depth_j]) channel-concatenated -> seven 3x3 stride-2 convs (16 .. 1024, ReLU)
  -> spatial mean (bottleneck) -> background rotation (3 Euler angles) + translation, and K
  -> optionally: the translation refined coarse to fine through conv7 .. conv1 and the input (residual field)

or, with `trunk_type="correlation"` (an addition of this project, see `CorrelationTrunk`), the bottleneck is the
spatial mean of features computed from an explicit match of the two frames.

Motion predicted from the input order (i, j) carries camera-j points into camera i: p_i = R p_j + t, with
R = `geometry.matrix_from_angles(rotation)`; `geometry.depth_warp(depth_j, R, t, K)` then tells where frame j's pixels
land in frame i.
"""

import keras
import tensorflow as tf

from depth_motion import correlation as correlation_lib
from depth_motion import geometry
from depth_motion import patch_match

TRUNK_FILTERS = (16, 32, 64, 128, 256, 512, 1024)
TRUNK_TYPES = ("plain", "correlation")
POSE_SOLVERS = ("regression", "least_squares", "direct")
# Least-squares pose: Gauss-Newton iterations, the Cauchy scale (pixels) with which every iteration after the first
# down-weights the flow vectors its predecessor does not explain (occlusions, pixels leaving the view, mismatches),
# and the weight of the prior towards a small translation (`geometry.motion_from_flow`): with the constant depth a
# depth network starts from, it cuts the gap-1 rotation error on synthetic pairs from 1.42 to 0.66 deg mean (worst
# 7.7 -> 1.7) and leaves the true depth's at 0.34-0.35 (README "What the stages reach").
POSE_ITERATIONS = 5
POSE_ROBUST_SCALE = 0.5
POSE_TRANSLATION_PRIOR = 0.003
# CorrelationTrunk: the shared encoder's (filters, stride) and the filters of the stride-2 convs after the match.
CORRELATION_ENCODER = ((16, 2), (32, 1), (32, 2), (32, 1))
CORRELATION_TRUNK_FILTERS = (64, 128, 256)


def _conv3x3(filters, kernel_initializer, name, strides=1):
  """The network's one convolution kind: 3x3, same padding, ReLU."""
  return keras.layers.Conv2D(filters, 3, strides=strides, padding="same", activation="relu",
                             kernel_initializer=kernel_initializer, name=name)


def at_least(value, minimum):
  """relu(value - minimum) + minimum: the original's floor on the learned output scales."""
  return tf.nn.relu(value - minimum) + minimum


@keras.saving.register_keras_serializable(package="depth_motion")
class AtLeast(keras.constraints.Constraint):
  """Keeps a weight >= `minimum` after each optimizer update (Keras applies variable constraints)."""

  def __init__(self, minimum=0.001):
    self.minimum = minimum

  def __call__(self, w):
    return at_least(w, self.minimum)

  def get_config(self):
    return {"minimum": self.minimum}


def residual_translation_ramp(step, begin_step=10000, end_step=20000):
  """The later code's ramp-in of the residual field: 0 until `begin_step`, then linear up to 1 at `end_step`.

  Args:
    step: scalar global training step.

  Returns:
    float32 scalar in [0, 1] to multiply the residual translation field with.
  """
  step = tf.cast(step, tf.float32)
  span = float(max(end_step - begin_step, 1))
  return tf.clip_by_value((step - float(begin_step)) / span, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="depth_motion")
class MotionRefinement(keras.layers.Layer):
  """One coarse-to-fine step of the translation field (FlowNet-like, with a residual connection).

  Bilinearly resize the field to the feature map, concatenate, branch A = one 3x3 conv, branch B = two 3x3 convs
  (all max(4, C) filters, ReLU), concatenate the branches, 1x1 conv to 3 (no bias), add to the resized field.

  Call: (field [B, h, w, 3], features [B, H, W, C]) -> [B, H, W, 3].
  """

  def __init__(self, filters, kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_initializer = kernel_initializer
    self.conv_a, self.conv_b1, self.conv_b2 = (_conv3x3(filters, kernel_initializer, name)
                                               for name in ("conv_a", "conv_b1", "conv_b2"))
    self.project = keras.layers.Conv2D(3, 1, use_bias=False, kernel_initializer=kernel_initializer, name="project")

  def call(self, field, features):
    upsampled = tf.image.resize(field, tf.shape(features)[1:3], method="bilinear")
    x = tf.concat([upsampled, features], axis=-1)
    branches = tf.concat([self.conv_a(x), self.conv_b2(self.conv_b1(x))], axis=-1)
    return upsampled + self.project(branches)

  def get_config(self):
    config = super().get_config()
    config.update({"filters": self.filters, "kernel_initializer": self.kernel_initializer})
    return config


def _coordinates(like):
  """[B, h, w, 2] pixel-centre coordinates (x, y) of `like`'s grid, normalized to [-1, 1]."""
  shape = tf.shape(like)
  ys = tf.linspace(-1.0, 1.0, shape[1])
  xs = tf.linspace(-1.0, 1.0, shape[2])
  grid = tf.stack(tf.meshgrid(xs, ys, indexing="xy"), axis=-1)
  return tf.cast(tf.broadcast_to(grid, [shape[0], shape[1], shape[2], 2]), like.dtype)


@keras.saving.register_keras_serializable(package="depth_motion")
class CorrelationTrunk(keras.layers.Layer):
  """Motion features from an explicit match of the two frames (not in the original, which has the plain trunk only).

  Both frames pass through one shared encoder (3x3 convs 16 stride 2, 32, 32 stride 2, 32; ReLU) to 1/4 resolution.
  Frame i's features are compared with frame j's at every displacement within `radius` (a correlation layer on
  unit-length features: cosine similarities), and a softmax over the displacements (the similarities times a learned
  temperature) gives the match probabilities, whose expectation is a flow field in 1/4-resolution pixels. The maps
  [flow (2), probabilities ((2 r + 1)^2), coordinates x, y in [-1, 1] (2), flow x coordinates (4)] go through 3x3
  stride-2 convs (64, 128, 256; ReLU). The coordinates matter because the motion network averages its last features
  over the image, which is blind to where a feature is: rotation about the optical axis and translation along it
  show as position-dependent flow (curl, divergence) that the products with the coordinates expose to the mean.

  Why: with the plain trunk the network has to learn matching itself, from the motion loss. On the synthetic video
  it memorises the pairs it sees but learns no estimator within a few thousand steps, even when trained on the true
  motion (README "What the stages reach on synthetic data" has the measurements); with the match given it does.

  Call: (frame_i [B, H, W, C], frame_j [B, H, W, C]) -> [B, H / 32, W / 32, 256] (rounded up).
  """

  def __init__(self, radius=3, kernel_initializer="he_normal", temperature_init=10.0, **kwargs):
    super().__init__(**kwargs)
    if radius < 1:
      raise ValueError(f"CorrelationTrunk radius must be >= 1 (displacements per side at 1/4 resolution). "
                       f"Received: radius={radius}")
    self.radius = int(radius)
    self.kernel_initializer = kernel_initializer
    self.temperature_init = float(temperature_init)
    self.encoder = [_conv3x3(f, kernel_initializer, f"encoder{i + 1}", strides=stride)
                    for i, (f, stride) in enumerate(CORRELATION_ENCODER)]
    self.correlation = correlation_lib.Correlation(self.radius, name="correlation")
    self.convs = [_conv3x3(f, kernel_initializer, f"conv{i + 1}", strides=2)
                  for i, f in enumerate(CORRELATION_TRUNK_FILTERS)]
    for layer in self.encoder + self.convs:  # Keras 3 lists are invisible to tf.train.Checkpoint.
      setattr(self, layer.name, layer)
    displacements = range(-self.radius, self.radius + 1)
    # The correlation layer's channel order: dy outer, dx inner.
    self.displacements = tf.constant([[dx, dy] for dy in displacements for dx in displacements], tf.float32)

  def build(self, input_shape):
    self.temperature = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.temperature_init),
                                       name="temperature")
    super().build(input_shape)

  def match(self, frame_i, frame_j):
    """(flow [B, h, w, 2] (dx, dy) in 1/4-resolution pixels from frame i to frame j, probabilities [B, h, w, n^2])."""
    features_i, features_j = frame_i, frame_j
    for conv in self.encoder:
      features_i, features_j = conv(features_i), conv(features_j)
    # Scaled to length sqrt(C), the correlation (a channel mean of products) is the cosine similarity.
    channels = float(CORRELATION_ENCODER[-1][0])
    features_i = tf.math.l2_normalize(features_i, axis=-1) * channels ** 0.5
    features_j = tf.math.l2_normalize(features_j, axis=-1) * channels ** 0.5
    similarity = self.correlation([features_i, features_j])
    probabilities = tf.nn.softmax(similarity * tf.cast(self.temperature, similarity.dtype), axis=-1)
    flow = tf.einsum("bhwk,kc->bhwc", probabilities, tf.cast(self.displacements, probabilities.dtype))
    return flow, probabilities

  def call(self, frame_i, frame_j):
    flow, probabilities = self.match(frame_i, frame_j)
    coordinates = _coordinates(flow)
    x = tf.concat([flow, probabilities, coordinates, flow[..., :1] * coordinates, flow[..., 1:] * coordinates],
                  axis=-1)
    for conv in self.convs:
      x = conv(x)
    return x

  def get_config(self):
    config = super().get_config()
    config.update({"radius": self.radius, "kernel_initializer": self.kernel_initializer,
                   "temperature_init": self.temperature_init})
    return config


@keras.saving.register_keras_serializable(package="depth_motion")
class MotionNet(keras.Model):
  """Egomotion (+ optional residual translation field) and camera intrinsics from two frames.

  Args:
    residual_translation: predict the per-pixel residual translation field (object motion). ScanNet-like static
      indoor scenes need none; without it the network is the trunk and the heads only.
    auto_mask: keep the residual field only where its norm exceeds its per-sample mean over the image (the later
      code's automatic mask; the later code takes that mean over the batch, which makes a sample's output depend on
      the rest of the batch). Only used with `residual_translation`.
    learn_intrinsics: predict K from the bottleneck; if False, K is read from `inputs["intrinsics"]`.
    use_depth: append each frame's depth as an input channel (8 channels, the later code) instead of RGB only (6).
    kernel_initializer: name of the Keras initializer of every convolution kernel (trunk and refinement). The
      original's Glorot uniform ("glorot_uniform") shrinks the activations about 2.5x per ReLU layer: at the
      bottleneck they are ~1e-3 of the input and the rotation output starts ~1e-5 rad, so its gradient steps barely
      move it. He normal (the default here, and the depth encoder's) keeps their scale.
    trunk_type: "plain" (the original's seven stride-2 convs on the channel-concatenated frames) or "correlation"
      (`CorrelationTrunk`: an explicit match of the two frames first; needs `residual_translation=False`).
    correlation_radius: the correlation trunk's displacements per side, in 1/4-resolution pixels.
    pose_solver: "regression" (the original: the rotation and translation are a dense layer on the bottleneck,
      times learned scales) or "least_squares" (not in the original): the rigid motion that best explains the
      full-resolution patch match from frame j to frame i (`patch_match.coarse_to_fine_flow`, no weights) given frame
      j's depth (`geometry.motion_from_flow`, each flow vector weighted by the confidence of its match). The pose then follows
      from the match and the depth, the translation included, which a regression from the trunk's spatial mean does
      not learn from small indoor baselines. Needs "depth_j"; the trunk serves the intrinsics head only (and is not
      run when K is given). No residual translation field. Or "direct" (not in the original): the rigid motion that
      best aligns frame i onto frame j given frame j's depth, by coarse-to-fine Gauss-Newton on the robust
      photometric error (`geometry.motion_from_images`); no gradient flows through it (it is the loss's minimiser
      over the pose, so the depth's gradient loses nothing). Same inputs and outputs as "least_squares".
    match_radius: the least-squares pose's search radius in pixels (the largest image motion it can match).
    scale_init: initial value of the learned rotation and translation output scales.
    min_scale: floor of those scales (relu(x - min_scale) + min_scale, also a variable constraint).

  Call arguments:
    inputs: dict with "image_i", "image_j" [B, H, W, 3] RGB in [0, 1]; "depth_i", "depth_j" [B, H, W] when
      `takes_depth`; "intrinsics" [B, 3, 3] when not `learn_intrinsics` (ignored otherwise).
    training: unused (no dropout or normalization), accepted for a uniform interface.

  Returns:
    dict, the motion carrying camera-j points into camera i:
      "rotation": [B, 3] Euler angles (radians; `geometry.matrix_from_angles` gives R = Rx Ry Rz),
      "translation": [B, 3] background translation,
      "residual_translation": [B, H, W, 3] on frame j's grid (only with `residual_translation`); the full field is
        translation + residual_translation (`geometry.translation_field`),
      "intrinsics": [B, 3, 3].
  """

  def __init__(self, residual_translation=False, auto_mask=True, learn_intrinsics=True, use_depth=False,
               kernel_initializer="he_normal", trunk_type="plain", correlation_radius=3,
               pose_solver="regression", match_radius=8, scale_init=0.01, min_scale=0.001, **kwargs):
    # Under mixed precision only the convolutions run in the compute dtype (`_frames` casts the images and depths
    # they read); intrinsics and the depths the pose solver reads stay float32.
    kwargs.setdefault("autocast", False)
    super().__init__(**kwargs)
    if trunk_type not in TRUNK_TYPES:
      raise ValueError(f"MotionNet trunk_type must be one of {TRUNK_TYPES}. Received: trunk_type={trunk_type!r}")
    if pose_solver not in POSE_SOLVERS:
      raise ValueError(f"MotionNet pose_solver must be one of {POSE_SOLVERS}. Received: pose_solver={pose_solver!r}")
    if pose_solver != "regression" and residual_translation:
      raise ValueError(f"MotionNet(pose_solver={pose_solver!r}) solves for one rigid motion: it has no residual "
                       "translation field (residual_translation=False).")
    if match_radius < 1:
      raise ValueError(f"MotionNet match_radius must be >= 1 (pixels). Received: match_radius={match_radius}")
    if trunk_type == "correlation" and residual_translation:
      raise ValueError("MotionNet(trunk_type='correlation') has no residual translation field (it refines through "
                       "the plain trunk's levels): use trunk_type='plain' with residual_translation=True.")
    self.trunk_type = trunk_type
    self.correlation_radius = correlation_radius
    self.pose_solver = pose_solver
    self.match_radius = match_radius
    self.residual_translation = residual_translation
    self.auto_mask = auto_mask
    self.learn_intrinsics = learn_intrinsics
    self.use_depth = use_depth
    self.kernel_initializer = kernel_initializer
    self.scale_init = scale_init
    self.min_scale = min_scale
    if pose_solver == "regression":
      constraint = AtLeast(min_scale)
      self.rotation_scale_var = self.add_weight(shape=(), initializer=keras.initializers.Constant(scale_init),
                                                constraint=constraint, name="rotation_scale")
      self.translation_scale_var = self.add_weight(shape=(), initializer=keras.initializers.Constant(scale_init),
                                                   constraint=constraint, name="translation_scale")
    if pose_solver != "regression" and not learn_intrinsics:
      pass  # no trunk: the pose is solved, K comes from the inputs
    elif trunk_type == "plain":
      self.trunk = [_conv3x3(f, kernel_initializer, f"conv{i + 1}", strides=2) for i, f in enumerate(TRUNK_FILTERS)]
      # Keras 3 lists are invisible to tf.train.Checkpoint; as attributes too, the layers are saved in checkpoints.
      for layer in self.trunk:
        setattr(self, layer.name, layer)
    else:
      self.correlation_trunk = CorrelationTrunk(correlation_radius, kernel_initializer=kernel_initializer,
                                                name="correlation_trunk")
    # 1x1 convolutions on the [B, 1, 1, 1024] bottleneck are dense layers on [B, 1024].
    if pose_solver == "regression":
      self.background_motion = keras.layers.Dense(6, use_bias=False, name="background_motion")
    if learn_intrinsics:
      self.focal_head = keras.layers.Dense(2, activation="softplus", name="focal_lengths")
      self.offset_head = keras.layers.Dense(2, use_bias=False, name="principal_point")
    if residual_translation:
      input_channels = 8 if use_depth else 6
      level_channels = list(reversed(TRUNK_FILTERS)) + [input_channels]
      self.refinements = [MotionRefinement(max(4, c), kernel_initializer=kernel_initializer,
                                           name=f"refine{len(level_channels) - 1 - i}")
                          for i, c in enumerate(level_channels)]
      for layer in self.refinements:
        setattr(self, layer.name, layer)

  @property
  def rotation_scale(self):
    """The effective rotation output scale (>= min_scale)."""
    return at_least(self.rotation_scale_var, self.min_scale)

  @property
  def translation_scale(self):
    """The effective translation output scale (>= min_scale)."""
    return at_least(self.translation_scale_var, self.min_scale)

  @property
  def takes_depth(self):
    """Whether `call` needs inputs "depth_i" and "depth_j" (`use_depth` or the least-squares pose)."""
    return self.use_depth or self.pose_solver != "regression"

  def _frames(self, inputs):
    """(images [image_i, image_j], depths [depth_i, depth_j] or []) as the trunk sees them: [B, H, W, 3 / 1]."""
    for key in ("image_i", "image_j") + (("depth_i", "depth_j") if self.takes_depth else ()):
      if key not in inputs:
        raise ValueError(f"MotionNet(use_depth={self.use_depth}, pose_solver={self.pose_solver!r}) needs "
                         f"inputs[{key!r}]. Received keys: {sorted(inputs)}")
    images = [tf.cast(inputs["image_i"], self.compute_dtype), tf.cast(inputs["image_j"], self.compute_dtype)]
    depths = [tf.cast(inputs[key], self.compute_dtype)[..., tf.newaxis]
              for key in ("depth_i", "depth_j")] if self.takes_depth else []
    return images, depths

  def call(self, inputs, training=None):
    if not isinstance(inputs, dict):
      raise ValueError(f"MotionNet takes a dict with 'image_i' and 'image_j'. Received: {type(inputs).__name__}")
    images, depths = self._frames(inputs)
    height, width = tf.shape(images[0])[1], tf.shape(images[0])[2]
    if self.pose_solver != "regression":
      bottleneck = self._bottleneck(images, depths)[0] if self.learn_intrinsics else None
      intrinsics = self._intrinsics(inputs, bottleneck, height, width)
      return {**self._solved_motion(inputs, intrinsics), "intrinsics": intrinsics}
    bottleneck, levels = self._bottleneck(images, depths)
    motion = tf.cast(self.background_motion(bottleneck), tf.float32)
    rotation_scale, translation_scale = self.rotation_scale, self.translation_scale
    outputs = {"rotation": motion[:, :3] * rotation_scale, "translation": motion[:, 3:] * translation_scale}

    if self.residual_translation:
      background = motion[:, tf.newaxis, tf.newaxis, 3:]
      field = tf.cast(background, self.compute_dtype)
      for refinement, level in zip(self.refinements, reversed(levels)):
        field = refinement(field, level)
      # The refinement starts from the background translation; what it adds on top is the residual field.
      residual = (tf.cast(field, tf.float32) - background) * translation_scale
      if self.auto_mask:
        # stop_gradient: the mask is a hard selection; its threshold gets no gradient (and tf.norm has none at 0).
        norm = tf.stop_gradient(tf.norm(residual, axis=-1, keepdims=True))
        residual *= tf.cast(norm > tf.reduce_mean(norm, axis=[1, 2], keepdims=True), residual.dtype)
      outputs["residual_translation"] = residual

    outputs["intrinsics"] = self._intrinsics(inputs, bottleneck, height, width)
    return outputs

  def _bottleneck(self, images, depths):
    """(bottleneck [B, C]: the trunk's spatial mean, the plain trunk's levels (input first) or None)."""
    depths = depths if self.use_depth else []
    if self.trunk_type == "plain":
      # The original's channel order: RGB_i, RGB_j [, depth_i, depth_j].
      levels = [tf.concat(images + depths, axis=-1)]
      for conv in self.trunk:
        levels.append(conv(levels[-1]))
      return tf.reduce_mean(levels[-1], axis=[1, 2]), levels
    frame_i, frame_j = (tf.concat([image] + depths[k:k + 1], axis=-1) for k, image in enumerate(images))
    return tf.reduce_mean(self.correlation_trunk(frame_i, frame_j), axis=[1, 2]), None

  def _intrinsics(self, inputs, bottleneck, height, width):
    """[B, 3, 3] K: from the bottleneck's heads when learned, else inputs["intrinsics"]."""
    if self.learn_intrinsics:
      size = tf.cast(tf.stack([width, height]), tf.float32)
      focal = tf.cast(self.focal_head(bottleneck), tf.float32) * size
      # Pixel centres at integer coordinates (see geometry.intrinsics): the image centre is (size - 1) / 2, so an
      # offset of 0 puts the principal point there (the original, with pixel corners, writes (x + 0.5) * size).
      principal = (tf.cast(self.offset_head(bottleneck), tf.float32) + 0.5) * size - 0.5
      return geometry.make_intrinsics(focal[:, 0], focal[:, 1], principal[:, 0], principal[:, 1])
    if "intrinsics" not in inputs:
      raise ValueError("MotionNet(learn_intrinsics=False) needs inputs['intrinsics'] [B, 3, 3]. Received keys: "
                       f"{sorted(inputs)}")
    return tf.cast(inputs["intrinsics"], tf.float32)

  def _solved_motion(self, inputs, intrinsics):
    """{"rotation", "translation"} of a solved pose: the rigid motion of camera-j points into camera i."""
    depth_j = tf.cast(inputs["depth_j"], tf.float32)
    if self.pose_solver == "direct":
      rotation, translation = geometry.motion_from_images(inputs["image_i"], inputs["image_j"], depth_j, intrinsics,
                                                          translation_prior=POSE_TRANSLATION_PRIOR)
    else:
      flow, confidence = patch_match.coarse_to_fine_flow(inputs["image_j"], inputs["image_i"],
                                                         radius=self.match_radius)
      rotation, translation = geometry.motion_from_flow(flow, depth_j, intrinsics, confidence,
                                                        iterations=POSE_ITERATIONS, robust_scale=POSE_ROBUST_SCALE,
                                                        translation_prior=POSE_TRANSLATION_PRIOR)
    return {"rotation": geometry.angles_from_matrix(rotation), "translation": translation}

  def get_config(self):
    config = super().get_config()
    config.update({"residual_translation": self.residual_translation, "auto_mask": self.auto_mask,
                   "learn_intrinsics": self.learn_intrinsics, "use_depth": self.use_depth,
                   "kernel_initializer": self.kernel_initializer, "trunk_type": self.trunk_type,
                   "correlation_radius": self.correlation_radius, "pose_solver": self.pose_solver,
                   "match_radius": self.match_radius,
                   "scale_init": self.scale_init,
                   "min_scale": self.min_scale})
    return config

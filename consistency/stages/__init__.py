"""The registered training stages: importing this package registers them all (see `consistency.harness.stage`)."""

from consistency.stages import consistency  # noqa: F401
from consistency.stages import depth_motion  # noqa: F401
from consistency.stages import efc  # noqa: F401
from consistency.stages import segmentation  # noqa: F401
from consistency.stages import toy_regression  # noqa: F401

import mmdet.evaluation  # noqa: F401  (parent registries do not run their locations imports)

from .functional import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403

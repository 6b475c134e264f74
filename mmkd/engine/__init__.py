import mmdet.engine  # noqa: F401  (parent registries do not run their locations imports)

from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403

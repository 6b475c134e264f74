import mmdet.models  # noqa: F401  (parent registries do not run their locations imports)

from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .distillers import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .test_time_augs import *  # noqa: F401,F403
from .wrappers import *  # noqa: F401,F403

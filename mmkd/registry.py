"""mmkd's registry scope ``mmkd``.

Every registry is a child of mmdet's (STYLE.md §8.1, option B), so mmdet and mmengine names
resolve unprefixed in mmkd configs (``default_scope='mmkd'``), and mmdet-scoped configs reach
mmkd names as ``mmkd.<Name>``. Registry parents do not run their own ``locations`` imports,
which is why each mmkd location module imports its mmdet counterpart.
"""
from mmdet.registry import DATA_SAMPLERS as MMDET_DATA_SAMPLERS
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import EVALUATOR as MMDET_EVALUATOR
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import LOG_PROCESSORS as MMDET_LOG_PROCESSORS
from mmdet.registry import LOOPS as MMDET_LOOPS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODEL_WRAPPERS as MMDET_MODEL_WRAPPERS
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMDET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import OPTIM_WRAPPERS as MMDET_OPTIM_WRAPPERS
from mmdet.registry import OPTIMIZERS as MMDET_OPTIMIZERS
from mmdet.registry import PARAM_SCHEDULERS as MMDET_PARAM_SCHEDULERS
from mmdet.registry import \
    RUNNER_CONSTRUCTORS as MMDET_RUNNER_CONSTRUCTORS
from mmdet.registry import RUNNERS as MMDET_RUNNERS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmdet.registry import VISBACKENDS as MMDET_VISBACKENDS
from mmdet.registry import VISUALIZERS as MMDET_VISUALIZERS
from mmdet.registry import \
    WEIGHT_INITIALIZERS as MMDET_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

RUNNERS = Registry('runner', parent=MMDET_RUNNERS, locations=['mmkd.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor',
    parent=MMDET_RUNNER_CONSTRUCTORS,
    locations=['mmkd.engine'])
LOOPS = Registry('loop', parent=MMDET_LOOPS, locations=['mmkd.engine'])
HOOKS = Registry('hook', parent=MMDET_HOOKS, locations=['mmkd.engine'])
DATASETS = Registry(
    'dataset', parent=MMDET_DATASETS, locations=['mmkd.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMDET_DATA_SAMPLERS, locations=['mmkd.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMDET_TRANSFORMS, locations=['mmkd.datasets'])
MODELS = Registry('model', parent=MMDET_MODELS, locations=['mmkd.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMDET_MODEL_WRAPPERS, locations=['mmkd.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer',
    parent=MMDET_WEIGHT_INITIALIZERS,
    locations=['mmkd.models'])
OPTIMIZERS = Registry(
    'optimizer', parent=MMDET_OPTIMIZERS, locations=['mmkd.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMDET_OPTIM_WRAPPERS, locations=['mmkd.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMDET_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmkd.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler',
    parent=MMDET_PARAM_SCHEDULERS,
    locations=['mmkd.engine'])
METRICS = Registry(
    'metric', parent=MMDET_METRICS, locations=['mmkd.evaluation'])
EVALUATOR = Registry(
    'evaluator', parent=MMDET_EVALUATOR, locations=['mmkd.evaluation'])
TASK_UTILS = Registry(
    'task util', parent=MMDET_TASK_UTILS, locations=['mmkd.models'])
VISUALIZERS = Registry(
    'visualizer', parent=MMDET_VISUALIZERS, locations=['mmkd.visualization'])
VISBACKENDS = Registry(
    'vis_backend', parent=MMDET_VISBACKENDS, locations=['mmkd.visualization'])
LOG_PROCESSORS = Registry(
    'log_processor', parent=MMDET_LOG_PROCESSORS, locations=['mmkd.engine'])

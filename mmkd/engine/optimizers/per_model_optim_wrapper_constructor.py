import copy
from typing import Dict, Optional, Union

from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict
from torch import nn

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PerModelOptimWrapperConstructor:
    """One optimiser wrapper per model of a distiller: the teacher (when trained online) and
    every student each get their own optimiser, ``clip_grad``, lr and weight decay, so a large
    gradient of one model never shrinks another model's step (one ``clip_grad`` over all models
    would). Built as mmengine's ``OptimWrapperDict`` keyed by model name; the distiller's
    ``train_step`` steps each wrapper with its own model's loss, the runner's param schedulers,
    checkpoints and resume handle every wrapper.

    Every model gets the shared settings, updated by ``per_model.<name>``:

    .. code-block:: python

        optim_wrapper = dict(
            constructor='PerModelOptimWrapperConstructor',
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
            clip_grad=dict(max_norm=35, norm_type=2),
            per_model=dict(teacher=dict(optimizer=dict(lr=0.02))))

    The models are the distiller's ``trainable_models()``; each parameter that requires a
    gradient must belong to exactly one of them. A model that is not a distiller (a teacher
    or a student trained alone from a derived config) gets one wrapper of the shared settings,
    as mmengine's default constructor builds it.

    Args:
        optim_wrapper_cfg (dict): The shared wrapper config, with an optional ``per_model``
            dict of overrides by model name.
        paramwise_cfg (dict, optional): mmengine's paramwise settings, applied within each
            model. Defaults to None.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        self.per_model: Dict[str, dict] = dict(cfg.pop('per_model', None) or {})
        self.shared, self.paramwise_cfg = cfg, paramwise_cfg

    def _build(self, cfg: dict, module: nn.Module) -> OptimWrapper:
        return DefaultOptimWrapperConstructor(copy.deepcopy(cfg), self.paramwise_cfg)(module)

    def __call__(self, model: nn.Module) -> Union[OptimWrapper, OptimWrapperDict]:
        if is_model_wrapper(model):
            model = model.module
        if not hasattr(model, 'trainable_models'):
            if self.per_model:
                raise ValueError(f'optim_wrapper.per_model names {sorted(self.per_model)}, but '
                                 f'{type(model).__name__} is one model, not a distiller: '
                                 'remove optim_wrapper.per_model')
            return self._build(self.shared, model)
        models = model.trainable_models()
        unknown = sorted(set(self.per_model) - set(models))
        if unknown:
            raise ValueError(f'optim_wrapper.per_model.{unknown[0]}: no trainable model of that '
                             f'name; the trainable models are {list(models)}')
        owner = {}
        for name, module in models.items():
            for param in module.parameters():
                if id(param) in owner:
                    raise ValueError(f'a parameter belongs to both {owner[id(param)]} and {name}')
                owner[id(param)] = name
        orphans = [n for n, p in model.named_parameters()
                   if p.requires_grad and id(p) not in owner]
        if orphans:
            raise ValueError(f'{type(model).__name__}: parameters {orphans[:5]} belong to none of '
                             f'the trainable models {list(models)}, so no optimiser would update '
                             'them: the distiller must list them in trainable_models()')
        wrappers = {}
        for name, module in models.items():
            cfg = self.shared
            if name in self.per_model:
                cfg = Config._merge_a_into_b(copy.deepcopy(self.per_model[name]),
                                             copy.deepcopy(self.shared))
            wrappers[name] = self._build(cfg, module)
        return OptimWrapperDict(**wrappers)

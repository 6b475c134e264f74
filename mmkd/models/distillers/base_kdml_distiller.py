import copy
from contextlib import ExitStack
from typing import Dict, List, Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.model import BaseModel, ModuleList
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor, nn

from mmkd.registry import MODELS
from ..utils import FiniteLossMixin

ModelCfg = Union[dict, str]


def resolve_model_cfg(cfg: ModelCfg, key: str) -> ConfigDict:
    """A model config from a dict, a config file path, an ``mmdet::`` / ``mmkd``-style package
    path (the ``model`` of that config), or ``dict(base=<path>, **overrides)``, where the
    overrides are merged into the base model as ``_base_`` inheritance would (``_delete_=True``
    replaces a sub-dict)."""
    overrides = {}
    if isinstance(cfg, dict) and 'base' in cfg:
        overrides = {k: v for k, v in cfg.items() if k != 'base'}
        cfg = cfg['base']
    if isinstance(cfg, str):
        try:
            loaded = get_config(cfg) if '::' in cfg else Config.fromfile(cfg)
        except Exception as e:  # noqa: BLE001  (re-raised with the config key)
            raise ValueError(f'{key}: cannot load config {cfg!r}: {e}') from e
        cfg = loaded.model.to_dict()
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'{key} must be a model config dict with a "type", a config file '
                         f'or an "mmdet::..." path, or dict(base=..., ...), got {cfg!r}')
    cfg = copy.deepcopy(dict(cfg))
    if overrides:
        cfg = Config._merge_a_into_b(copy.deepcopy(overrides), cfg)
    # mmdet models read their train_cfg / test_cfg by attribute.
    return ConfigDict(cfg)


def build_model_cfg(cfg: ModelCfg, key: str) -> nn.Module:
    """Build a model from any form :func:`resolve_model_cfg` accepts."""
    return MODELS.build(resolve_model_cfg(cfg, key))


class BaseKDMLDistiller(FiniteLossMixin, BaseModel):
    """What every teacher → K-student distiller shares: building the models, the teacher's
    lifecycle (online or offline) and model names.

    * **online**: the teacher is trained by its own task loss in the same step; wherever its
      outputs are a target they are detached, so students send it no gradient.
    * **offline**: the teacher comes from ``teacher_ckpt`` (loaded in ``init_weights``, after
      weight initialisation, so nothing can overwrite it), is frozen (``requires_grad=False``,
      hence left out of the optimiser), always in eval mode and run under ``no_grad``.

    The teacher is a registered submodule either way, so its weights are in every checkpoint
    and a resumed or exported run needs nothing else.

    **Each model optimised on its own.** With ``PerModelOptimWrapperConstructor`` the runner's
    optimiser is an ``OptimWrapperDict`` with one wrapper per trainable model
    (:meth:`trainable_models`: an online teacher and every student), and :meth:`train_step`
    backpropagates each model's own loss (the keys ``{model}.…``) and steps each wrapper
    with its own ``clip_grad``, lr, weight decay and AMP loss scale, so that no model's
    gradient changes another model's update. A single ``OptimWrapper`` still works (one
    optimiser, one clip over all models: mmengine's default step).

    ``distill_factor`` (1.0) multiplies the KD and ML weights β and γ;
    :class:`DistillScheduleHook` ramps it in at the start of training.

    Args:
        students (list[dict | str]): K ≥ 1 student model configs (dicts or config files).
        teacher (dict | str, optional): Teacher model config; None trains the students by
            mutual learning alone. Defaults to None.
        teacher_mode (str): ``'online'`` or ``'offline'``. Defaults to 'online'.
        teacher_ckpt (str, optional): Checkpoint of the teacher (a checkpoint written by
            training the teacher config alone); required offline. Defaults to None.
        predict_on (str): Model whose output ``predict`` returns as the prediction:
            ``'ensemble'``, ``'teacher'`` or ``'student{k}'``. Defaults to 'ensemble'.
        data_preprocessor (dict, optional): Runs once for all models. Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 students: List[ModelCfg],
                 teacher: Optional[ModelCfg] = None,
                 teacher_mode: str = 'online',
                 teacher_ckpt: Optional[str] = None,
                 predict_on: str = 'ensemble',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not students:
            raise ValueError('model.students needs at least one student config')
        if teacher_mode not in ('online', 'offline'):
            raise ValueError(f"model.teacher_mode must be 'online' or 'offline', "
                             f'got {teacher_mode!r}')
        if teacher_mode == 'offline' and (teacher is None or teacher_ckpt is None):
            raise ValueError('an offline teacher needs model.teacher and model.teacher_ckpt '
                             '(the checkpoint written by training the teacher config alone)')
        # mmengine's ModuleList, not torch's: BaseModule.init_weights only walks into children
        # that have init_weights, so a torch ModuleList would leave every student uninitialised.
        self.students = ModuleList(
            build_model_cfg(s, f'model.students[{k}]') for k, s in enumerate(students))
        self.teacher = None if teacher is None else build_model_cfg(teacher, 'model.teacher')
        self.teacher_mode, self.teacher_ckpt = teacher_mode, teacher_ckpt
        if self.offline:
            self.teacher.requires_grad_(False)
        names = self.model_names + ['ensemble']
        if predict_on not in names:
            raise ValueError(f'model.predict_on must be one of {names}, got {predict_on!r}')
        self.predict_on = predict_on
        self.distill_factor = 1.0

    @property
    def offline(self) -> bool:
        return self.teacher is not None and self.teacher_mode == 'offline'

    @property
    def num_students(self) -> int:
        return len(self.students)

    @property
    def model_names(self) -> List[str]:
        teacher = [] if self.teacher is None else ['teacher']
        return teacher + [f'student{k}' for k in range(self.num_students)]

    def named_models(self) -> Dict[str, nn.Module]:
        """``{'teacher': …, 'student0': …, …}`` in that order (no teacher in ML-only runs)."""
        teacher = [] if self.teacher is None else [self.teacher]
        return dict(zip(self.model_names, teacher + list(self.students)))

    def trainable_models(self) -> Dict[str, nn.Module]:
        """The models an optimiser updates, by name: an online teacher and every student
        (an offline teacher is frozen). ``PerModelOptimWrapperConstructor`` gives each its
        own optimiser wrapper; every trainable parameter must belong to exactly one."""
        return {name: model for name, model in self.named_models().items()
                if not (name == 'teacher' and self.offline)}

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict]) -> Dict[str, Tensor]:
        if isinstance(optim_wrapper, OptimWrapperDict):
            return self.step_per_model(self, data, optim_wrapper)
        return super().train_step(data, optim_wrapper)

    def step_per_model(self, forward_module: nn.Module, data: Union[dict, tuple, list],
                       optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        """One training step with one optimiser wrapper per model.

        One forward pass of every model on the batch; then each model's loss (the sum of its
        ``{model}.*loss*`` terms) is backpropagated through its own wrapper (its loss scale
        and gradient-accumulation factor), and only when every backward pass has run is each
        wrapper stepped (its own ``clip_grad``) and zeroed. Targets are detached, so each
        backward reaches one model's parameters only; stepping after all of them keeps DDP's
        gradient all-reduce, which completes with the last backward pass, before any update.

        Args:
            forward_module (nn.Module): ``self``, or the DDP wrapper around it (the forward
                pass must go through DDP).
            data: A batch from the dataloader.
            optim_wrapper (OptimWrapperDict): One wrapper per name of
                :meth:`trainable_models`.

        Returns:
            dict: The log variables (``loss`` is the sum over models, as with one wrapper).
        """
        names = list(self.trainable_models())
        if sorted(optim_wrapper.keys()) != sorted(names):
            raise ValueError(f'optim_wrapper holds wrappers for {sorted(optim_wrapper.keys())}, '
                             f'but the trainable models are {names}: build it with '
                             "optim_wrapper.constructor='PerModelOptimWrapperConstructor'")
        wrappers = {name: optim_wrapper[name] for name in names}
        with ExitStack() as stack:
            for wrapper in wrappers.values():  # autocast (AMP) and DDP's no_sync
                stack.enter_context(wrapper.optim_context(forward_module))
            data = self.data_preprocessor(data, True)
            losses = forward_module._run_forward(data, mode='loss')
        _, log_vars = self.parse_losses(losses)  # the sum, checked finite, is logged
        own = {name: [] for name in names}
        for key, value in log_vars.items():
            if key == 'loss' or 'loss' not in key:
                continue
            name = key.split('.', 1)[0]
            if name not in own:
                raise KeyError(f'loss {key!r} belongs to none of the trainable models {names}')
            own[name].append(value)
        for name, wrapper in wrappers.items():
            if not own[name]:
                raise KeyError(f'no loss term of {name} among {list(log_vars)}: every '
                               'trainable model needs a loss of its own')
            wrapper.backward(wrapper.scale_loss(sum(own[name])))
        for wrapper in wrappers.values():
            if wrapper.should_update():
                wrapper.step()
                wrapper.zero_grad()
        return log_vars

    def check_mutual_learning(self, ml_weight: float) -> None:
        if ml_weight > 0 and self.num_students < 2:
            raise ValueError(f'model.ml_weight={ml_weight} needs at least 2 students for '
                             'mutual learning, got 1: add a student or set ml_weight=0')

    def train(self, mode: bool = True):
        super().train(mode)
        if self.offline:
            self.teacher.eval()
        return self

    def init_weights(self):
        super().init_weights()
        if self.teacher_ckpt is not None:
            self.load_teacher(self.teacher_ckpt)

    def load_teacher(self, path: str) -> None:
        """Load the teacher's weights strictly: any missing or unexpected key, or any shape
        that differs from the teacher config, is an error naming them."""
        checkpoint = _load_checkpoint(path, map_location='cpu')
        state = checkpoint.get('state_dict', checkpoint)
        own = self.teacher.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [f'{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(own[k].shape)}'
                  for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
        if missing or unexpected or shapes:
            raise ValueError(
                f'model.teacher_ckpt {path} does not match model.teacher: missing keys '
                f'{missing[:10]}{" ..." if len(missing) > 10 else ""}, unexpected keys '
                f'{unexpected[:10]}{" ..." if len(unexpected) > 10 else ""}, shape '
                f'mismatches {shapes[:10]}')
        self.teacher.load_state_dict(state, strict=True)

    @classmethod
    def standalone_student_cfg(cls, model_cfg: dict, k: int) -> dict:
        """Config of student ``k`` as a model of its own (used by the export tool): the
        student config with the distiller's data preprocessor."""
        student = resolve_model_cfg(model_cfg['students'][k], f'model.students[{k}]')
        if model_cfg.get('data_preprocessor') is not None:
            student['data_preprocessor'] = copy.deepcopy(model_cfg['data_preprocessor'])
        return student

    @staticmethod
    def prefixed(name: str, losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``{'loss_cls': x}`` → ``{'{name}.loss_cls': x}``."""
        return {f'{name}.{key}': value for key, value in losses.items()}

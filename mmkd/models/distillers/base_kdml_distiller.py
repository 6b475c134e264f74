import copy
from typing import Dict, List, Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.model import BaseModel, ModuleList
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

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

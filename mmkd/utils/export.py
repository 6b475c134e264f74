"""Export each student of a distiller checkpoint as a standalone checkpoint + config."""
import copy
import inspect
import os
import os.path as osp
from typing import List, Tuple

from mmengine.config import Config
from mmengine.runner import save_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

from mmkd.registry import METRICS, MODELS


def _name_evaluators(cfg: Config, name: str) -> None:
    """Metrics that name a lone model (``model_name``) report it under the student's name, so
    that the exported student's keys equal its keys inside the distiller."""
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        metrics = evaluator if isinstance(evaluator, list) else [evaluator]
        for metric in metrics:
            if isinstance(metric, dict) and 'type' in metric:
                metric_cls = METRICS.get(metric['type'])
                if metric_cls and 'model_name' in inspect.signature(metric_cls).parameters:
                    metric['model_name'] = name


def name_lone_model(cfg: Config, name: str) -> None:
    """Make a model trained or tested alone (``cfg.model``) report its metrics as ``name``
    does inside a distiller (``teacher/…``, ``student0/…``): its own ``name`` argument where
    the model has one (mmkd classifiers), else the metrics' ``model_name``."""
    model_cls = MODELS.get(cfg.model['type'])
    if model_cls is not None and 'name' in inspect.signature(model_cls).parameters:
        cfg.model['name'] = name
    _name_evaluators(cfg, name)


def export_students(cfg: Config, checkpoint: str, out_dir: str) -> List[Tuple[str, str]]:
    """Write ``student{k}.py`` and ``student{k}.pth`` for every student of ``cfg.model``.

    The config is the distiller's config with ``model`` replaced by the student's own config
    (``standalone_student_cfg`` of the distiller class) and no distiller-only hooks; the
    checkpoint holds the student's weights with the ``students.{k}.`` prefix removed. Loading
    them needs no distiller: ``tools/test.py student0.py student0.pth`` evaluates the student
    alone to the same numbers as the distiller's ``student0/*`` keys. ``checkpoint`` is read
    through mmkd's checked loader and each ``student{k}.pth`` gets its ``.sha256`` digest.

    Returns:
        list[tuple[str, str]]: (config path, checkpoint path) per student.
    """
    distiller = MODELS.get(cfg.model['type'])
    if distiller is None or not hasattr(distiller, 'standalone_student_cfg'):
        raise ValueError(f'model.type {cfg.model["type"]!r} is not a teacher/student '
                         'distiller: nothing to export')
    # mmengine's loader, which mmkd checks (digest, allow-list, truncation; the file named).
    state = _load_checkpoint(checkpoint, map_location='cpu')
    state = state.get('state_dict', state)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for k in range(len(cfg.model['students'])):
        prefix = f'students.{k}.'
        weights = {key[len(prefix):]: v for key, v in state.items() if key.startswith(prefix)}
        if not weights:
            raise ValueError(f'{checkpoint} holds no "{prefix}*" weights: is it a checkpoint of '
                             f'this config ({cfg.filename})?')
        student_cfg = copy.deepcopy(cfg)
        student_cfg.model = distiller.standalone_student_cfg(cfg.model, k)
        student_cfg.custom_hooks = [
            h for h in cfg.get('custom_hooks', []) if h.get('type') != 'PSKDMemoryHook']
        student_cfg.load_from = None
        _name_evaluators(student_cfg, f'student{k}')
        paths = (osp.join(out_dir, f'student{k}.py'), osp.join(out_dir, f'student{k}.pth'))
        student_cfg.dump(paths[0])
        # Written atomically with its digest, as the runner's checkpoints are.
        save_checkpoint({'state_dict': weights,
                         'meta': dict(exported_from=checkpoint, student=k)}, paths[1],
                        backend_args=dict(backend='atomic_local'))
        written.append(paths)
    return written

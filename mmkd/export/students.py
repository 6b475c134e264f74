"""Export each student of a distiller checkpoint as a standalone checkpoint + config."""
import copy
import inspect
import logging
import os
import os.path as osp
import shutil
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.runner import save_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

from mmkd.registry import DATASETS, METRICS, MODELS
from .plain_models import (backbone_note, is_mmdet_model, mmdet_resnet, plain_mmdet_config,
                           torchvision_classifier, torchvision_note, torchvision_state_dict)


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


def prepare_out_dir(out_dir: str, overwrite: bool, keep: Sequence[str] = ()) -> None:
    """Make ``out_dir`` an empty folder for an export, before any work: a folder that holds
    files is refused (an export into it would replace ``student0.pth`` and leave the other
    export's files beside the new ones) unless ``overwrite``, which removes it whole first.
    ``keep`` (the checkpoint and config being exported) must not lie inside it.

    Raises:
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False, or it is a file.
        ValueError: ``overwrite`` would remove a file of ``keep``.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise FileExistsError(f'--out-dir {out_dir} is a file, not a folder')
    found = sorted(os.listdir(out_dir)) if osp.isdir(out_dir) else []
    if found and not overwrite:
        shown = ', '.join(found[:5]) + (f' and {len(found) - 5} more' if len(found) > 5 else '')
        raise FileExistsError(
            f'--out-dir {out_dir} is not empty ({shown}): exporting into it would mix this '
            'export with what is there. Pick a new folder, or pass --overwrite to replace it '
            'whole.')
    if found:
        root = osp.join(osp.abspath(out_dir), '')
        inside = [p for p in keep if osp.abspath(p).startswith(root)]
        if inside:
            raise ValueError(f'--overwrite would remove {out_dir} whole, which holds '
                             f'{", ".join(inside)} (what is being exported): pick another '
                             '--out-dir')
        shutil.rmtree(out_dir)
        print_log(f'--overwrite: removed {out_dir} ({len(found)} entries) before the export',
                  logger='current', level=logging.WARNING)
    os.makedirs(out_dir, exist_ok=True)


def export_config(config: str, checkpoint: str, data_root: Optional[str] = None,
                  cfg_options: Optional[dict] = None) -> Tuple[Config, str]:
    """The config to export ``checkpoint``'s students from: the one its run dumped beside it
    (``<checkpoint folder>/<config file name>``, with the run's ``--data-root`` and
    ``--cfg-options``) when there is one, else ``config``; then ``cfg_options`` and
    ``data_root`` on top.

    Returns:
        tuple: The config and a phrase naming where it came from.
    """
    dumped = osp.join(osp.dirname(checkpoint), osp.basename(config))
    use_dumped = osp.isfile(dumped) and osp.abspath(dumped) != osp.abspath(config)
    cfg = Config.fromfile(dumped if use_dumped else config)
    source = (f'{dumped} (the config the run dumped beside its checkpoint)' if use_dumped
              else config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        from mmkd.utils.launch import set_data_root
        set_data_root(cfg, data_root)
        source += f', --data-root {data_root}'
    return cfg, source


def _student_cfgs(cfg: Config) -> List[dict]:
    distiller = MODELS.get(cfg.model['type'])
    if distiller is None or not hasattr(distiller, 'standalone_student_cfg'):
        raise ValueError(f'model.type {cfg.model["type"]!r} is not a teacher/student '
                         'distiller: nothing to export')
    return [distiller.standalone_student_cfg(cfg.model, k)
            for k in range(len(cfg.model['students']))]


def export_notes(cfg: Config) -> List[str]:
    """One line per exported student on what it is beyond mmkd's own format, and on what it
    still needs: its torchvision state dict (classifiers), or mmkd for a detector backbone
    plain mmdet lacks. ``tools/export_students.py`` prints them."""
    notes = []
    for k, student in enumerate(_student_cfgs(cfg)):
        name = f'student{k}'
        if is_mmdet_model(student):
            note = backbone_note(name, student.get('backbone', {}))
            notes.append(note or f'{name}: plain mmdet (init_detector / inference_detector, '
                         "mmdet's tools/test.py); mmkd not needed")
        elif student.get('type') == 'ImageClassifier':
            notes.append(torchvision_note(name, student))
        else:
            notes.append(f"{name}: mmkd's {student.get('type')}: loading it needs mmkd")
    return notes


def _dataset_meta(checkpoint: dict, cfg: Config) -> Optional[dict]:
    """The class names (and palette) the runner saved in the checkpoint's meta, else those
    of the test dataset's config, so that mmdet's init_detector labels boxes right."""
    meta = checkpoint.get('meta', {}).get('dataset_meta')
    if meta is not None:
        return dict(meta)
    dataset = (cfg.get('test_dataloader') or {}).get('dataset')
    while isinstance(dataset, dict) and 'dataset' in dataset:
        dataset = dataset['dataset']
    if not isinstance(dataset, dict):
        return None
    with DefaultScope.overwrite_default_scope('mmkd'):
        dataset_cls = DATASETS.get(dataset['type'])
    meta = dict(getattr(dataset_cls, 'METAINFO', {}))
    meta.update(dataset.get('metainfo') or {})
    return meta or None


def _check_mmdet_resnet(model: dict, weights: dict) -> None:
    """The mapped backbone loads strictly into mmdet's ResNet: the export fails rather than
    write a detector whose backbone would start from random weights."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        resnet = MMDET_MODELS.build(model['backbone'])
    prefix = 'backbone.'
    resnet.load_state_dict({k[len(prefix):]: v for k, v in weights.items()
                            if k.startswith(prefix)}, strict=True)


def export_students(cfg: Config, checkpoint: str, out_dir: str) -> List[Tuple[str, str]]:
    """Write ``student{k}.py`` and ``student{k}.pth`` for every student of ``cfg.model``.

    The checkpoint holds the student's weights with the ``students.{k}.`` prefix removed and
    the class names in ``meta.dataset_meta``. Detection students (mmdet detectors) get a plain
    mmdet config (``mmkd.export.plain_models``): mmdet's own ``init_detector(config,
    checkpoint)``, ``inference_detector`` and tools load them without mmkd (except a backbone
    plain mmdet lacks: :func:`export_notes`). Other students keep mmkd's config (the
    distiller's with ``model`` replaced by the student's, no distiller-only hooks), so that
    ``tools/test.py student0.py student0.pth`` reports the distiller's ``student0/*`` numbers;
    torchvision classifiers also get ``student{k}_torchvision.pth``. ``checkpoint`` is read
    through mmkd's checked loader and each ``student{k}.pth`` gets its ``.sha256`` digest.

    Returns:
        list[tuple[str, str]]: (config path, checkpoint path) per student.
    """
    students = _student_cfgs(cfg)
    # mmengine's loader, which mmkd checks (digest, allow-list, truncation; the file named).
    source = _load_checkpoint(checkpoint, map_location='cpu')
    state = source.get('state_dict', source)
    dataset_meta = _dataset_meta(source, cfg)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for k, student in enumerate(students):
        name, prefix = f'student{k}', f'students.{k}.'
        weights = {key[len(prefix):]: v for key, v in state.items() if key.startswith(prefix)}
        if not weights:
            raise ValueError(f'{checkpoint} holds no "{prefix}*" weights: is it a checkpoint of '
                             f'this config ({cfg.filename})?')
        paths = (osp.join(out_dir, f'{name}.py'), osp.join(out_dir, f'{name}.pth'))
        if is_mmdet_model(student):
            mapped = mmdet_resnet(student.get('backbone', {})) is not None
            student_cfg = plain_mmdet_config(cfg, student, out_dir, name)
            if mapped:
                _check_mmdet_resnet(student_cfg.model, weights)
        else:
            student_cfg = copy.deepcopy(cfg)
            student_cfg.model = student
            student_cfg.custom_hooks = [
                h for h in cfg.get('custom_hooks', []) if h.get('type') != 'PSKDMemoryHook']
            student_cfg.load_from, student_cfg.resume = None, False
            student_cfg.pop('work_dir', None)  # the run's: tests of it would log there
            _name_evaluators(student_cfg, name)
            found = torchvision_classifier(student)
            if found is not None:
                torch.save(torchvision_state_dict(weights, found[1]),
                           osp.join(out_dir, f'{name}_torchvision.pth'))
        student_cfg.dump(paths[0])
        meta = dict(exported_from=checkpoint, student=k)
        if dataset_meta is not None:
            meta['dataset_meta'] = dataset_meta
        # Written atomically with its digest, as the runner's checkpoints are.
        save_checkpoint({'state_dict': weights, 'meta': meta}, paths[1],
                        backend_args=dict(backend='atomic_local'))
        written.append(paths)
    return written

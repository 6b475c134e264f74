"""Students as plain mmdet / torchvision models: what ``tools/export_students.py`` writes so
that the student loads where mmkd is not installed.

* Detection students become mmdet configs (``default_scope='mmdet'``, no ``custom_imports``,
  mmdet transforms, ``CocoDataset`` / ``CocoMetric`` on annotations converted from mmkd's
  datasets) that mmdet's ``init_detector`` / ``inference_detector`` and its runner load.
  ``TorchvisionBackbone`` ResNets become mmdet ``ResNet`` backbones (same module names, so
  the weights load unchanged; the export checks it with a strict load). Other torchvision
  backbones have no mmdet counterpart and keep ``mmkd.TorchvisionBackbone``.
* Classification students (``ImageClassifier`` on a ResNet / DenseNet / EfficientNet
  ``TorchvisionBackbone``) also get a ``torchvision.models.<arch>`` state dict.
"""
import copy
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope

from mmkd.registry import DATASETS

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# mmkd transforms and the mmdet transform that does the same for valid input.
_TRANSFORMS = {'LoadImageChecked': 'LoadImageFromFile'}
# The classifier head of each torchvision family, where mmkd's ImageClassifier puts ``head``.
_TORCHVISION_HEADS = {'resnet': 'fc', 'densenet': 'classifier', 'efficientnet': 'classifier.1'}


def _name(type_: object) -> str:
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', str(type_))
    return name.split('.')[-1]


def in_mmdet(registry, type_: object) -> bool:
    """Whether ``type_`` resolves in mmdet's scope without mmkd (an ``mmkd.`` prefix never)."""
    if isinstance(type_, str) and type_.startswith('mmkd.'):
        return False
    return registry.get(_name(type_)) is not None


def is_mmdet_model(model: dict) -> bool:
    return in_mmdet(MMDET_MODELS, model.get('type'))


def _torchvision_family(backbone: dict) -> Optional[str]:
    if _name(backbone.get('type')) != 'TorchvisionBackbone':
        return None
    return next((f for f in _TORCHVISION_HEADS if backbone['arch'].startswith(f)), 'other')


def mmdet_resnet(backbone: dict) -> Optional[dict]:
    """mmdet's ``ResNet`` config equal to a ``TorchvisionBackbone`` ResNet (same module and
    parameter names: ``conv1``, ``bn1``, ``layer1.0.conv1`` ...; the 3×3 conv strided, i.e.
    ``style='pytorch'``), or None when there is none (another arch, ``small_input``)."""
    if _torchvision_family(backbone) != 'resnet' or backbone.get('small_input'):
        return None
    indices = tuple(backbone.get('out_indices', (3, )))
    frozen = backbone.get('frozen_stages', -1)
    return dict(type='ResNet', depth=int(backbone['arch'][len('resnet'):]),
                num_stages=max(indices) + 1, out_indices=indices,
                # mmkd freezes the stem and stages 0..k, mmdet the stem and layers 1..k+1
                frozen_stages=frozen + 1 if frozen >= 0 else -1,
                norm_cfg=dict(type='BN', requires_grad=True),
                norm_eval=backbone.get('norm_eval', False), style='pytorch', init_cfg=None)


def backbone_note(name: str, backbone: dict) -> Optional[str]:
    """What an exported detector on ``backbone`` still needs beyond plain mmdet, or None."""
    if _torchvision_family(backbone) is None or mmdet_resnet(backbone) is not None:
        return None
    why = ('small_input=True changes the ResNet stem' if backbone.get('small_input') else
           'mmdet has no such backbone')
    return (f"{name}: backbone TorchvisionBackbone(arch='{backbone['arch']}') has no plain "
            f'mmdet counterpart ({why}): {name}.py keeps type=\'mmkd.TorchvisionBackbone\' '
            "and custom_imports=dict(imports=['mmkd']), so loading it needs mmkd installed "
            '(pip install -e <mmkd checkout>); everything else in it is plain mmdet')


def torchvision_classifier(model: dict) -> Optional[Tuple[str, str]]:
    """``(arch, head prefix)`` when ``model`` (an mmkd ``ImageClassifier``) is exactly
    ``torchvision.models.<arch>``: ResNet, DenseNet, EfficientNet without ``small_input``
    (VGG classifies with three linear layers on a 7×7 map, mmkd with one on pooled
    features). None otherwise."""
    backbone = model.get('backbone', {})
    family = _torchvision_family(backbone)
    if (_name(model.get('type')) != 'ImageClassifier' or family not in _TORCHVISION_HEADS
            or backbone.get('small_input') or max(backbone.get('out_indices', (3, ))) != 3):
        return None
    return backbone['arch'], _TORCHVISION_HEADS[family]


def torchvision_note(name: str, model: dict) -> str:
    found = torchvision_classifier(model)
    if found is not None:
        arch, _ = found
        return (f'{name}: {name}_torchvision.pth is a state dict of torchvision.models.{arch}'
                f"(num_classes={model['num_classes']}); load_state_dict(strict=True)")
    backbone = model.get('backbone', {})
    return (f'{name}: no torchvision state dict ({_name(model.get("type"))} on '
            f'{_name(backbone.get("type"))}(arch={backbone.get("arch")!r}, small_input='
            f'{backbone.get("small_input", False)}) is not a torchvision.models classifier: '
            'torchvision has ResNet, DenseNet and EfficientNet exactly, at 224-px stems)')


def torchvision_state_dict(weights: Dict[str, object], head: str) -> Dict[str, object]:
    """mmkd ``ImageClassifier`` keys → torchvision keys: ``backbone.X`` → ``X`` (the
    backbone keeps torchvision's module names), ``head.*`` → ``<head>.*``."""
    mapped = {}
    for key, value in weights.items():
        if key.startswith('backbone.'):
            mapped[key[len('backbone.'):]] = value
        elif key.startswith('head.'):
            mapped[f'{head}.{key[len("head."):]}'] = value
        else:
            raise KeyError(f'{key}: not a backbone or head weight of an ImageClassifier')
    return mapped


def coco_annotations(dataset) -> dict:
    """A detection dataset's images and boxes as a COCO annotation dict (image ids from 1,
    category ids = label + 1, ignored boxes as crowd), file names relative to its data_root."""
    dataset.full_init()
    classes = dataset.metainfo['classes']
    images, annotations = [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        path = info['img_path']
        if dataset.data_root:
            path = osp.relpath(path, dataset.data_root)
        images.append(dict(id=i + 1, file_name=path, height=info['height'],
                           width=info['width']))
        for inst in info.get('instances', []):
            x1, y1, x2, y2 = (float(v) for v in inst['bbox'])
            annotations.append(dict(
                id=len(annotations) + 1, image_id=i + 1, category_id=inst['bbox_label'] + 1,
                bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                iscrowd=int(inst.get('ignore_flag', 0))))
    return dict(images=images, annotations=annotations,
                categories=[dict(id=j + 1, name=c) for j, c in enumerate(classes)])


def _plain_pipeline(pipeline: List[dict], key: str) -> List[dict]:
    steps = []
    for i, step in enumerate(pipeline):
        step = dict(step)
        name = _name(step['type'])
        if name in _TRANSFORMS:
            step['type'] = _TRANSFORMS[name]
        elif not in_mmdet(MMDET_TRANSFORMS, step['type']):
            raise ValueError(f'{key}.pipeline[{i}].type = {step["type"]!r} is an mmkd '
                             'transform without an mmdet counterpart: the student cannot be '
                             'exported as a plain mmdet config')
        steps.append(step)
    return steps


def _plain_dataset(dataset: dict, key: str, ann_file: str) -> dict:
    """``dataset`` itself when mmdet has its type (pipeline mapped; wrappers such as
    ``RepeatDataset`` looked into), else a ``CocoDataset`` on its annotations, which are
    written to ``ann_file``."""
    if in_mmdet(MMDET_DATASETS, dataset['type']) and 'dataset' in dataset:
        return dict(dataset, dataset=_plain_dataset(dataset['dataset'], f'{key}.dataset',
                                                    ann_file))
    pipeline = _plain_pipeline(dataset.get('pipeline', []), key)
    if in_mmdet(MMDET_DATASETS, dataset['type']):
        return dict(dataset, pipeline=pipeline)
    with DefaultScope.overwrite_default_scope('mmkd'):
        built = DATASETS.build(copy.deepcopy(dataset))
    with open(ann_file, 'w') as f:
        json.dump(coco_annotations(built), f)
    return dict(type='CocoDataset', data_root=built.data_root or '', ann_file=ann_file,
                data_prefix=dict(img=''), metainfo=dict(classes=built.metainfo['classes']),
                test_mode=dataset.get('test_mode', False), pipeline=pipeline)


def _coco_ann_file(dataset: dict) -> str:
    while 'ann_file' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    return osp.join(dataset.get('data_root') or '', dataset['ann_file'])


def plain_mmdet_config(cfg: Config, model: dict, out_dir: str, name: str) -> Config:
    """The distiller's config ``cfg`` for student ``model`` alone, in mmdet's own terms."""
    plain = copy.deepcopy(cfg)
    backbone = model['backbone']
    resnet = mmdet_resnet(backbone)
    needs_mmkd = _torchvision_family(backbone) is not None and resnet is None
    if resnet is not None:
        model['backbone'] = resnet
    elif needs_mmkd:
        backbone['type'] = 'mmkd.TorchvisionBackbone'
    plain.model = model
    plain.default_scope = 'mmdet'
    plain.pop('custom_imports', None)
    if needs_mmkd:
        plain.custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
    plain.pop('work_dir', None)
    plain.load_from, plain.resume = None, False
    plain.custom_hooks = [h for h in cfg.get('custom_hooks', [])
                          if in_mmdet(MMDET_HOOKS, h['type'])]
    for hook in plain.get('default_hooks', {}).values():
        # mmkd's atomic checkpoint backend is registered by `import mmkd`
        if isinstance(hook, dict) and hook.get('backend_args', {}).get('backend') == \
                'atomic_local':
            hook.pop('backend_args')
    for loader in LOADERS:
        if plain.get(loader):
            plain[loader].dataset = _plain_dataset(
                plain[loader].dataset, f'{loader}.dataset',
                # absolute: CocoDataset joins a relative ann_file to its data_root
                osp.abspath(osp.join(out_dir, f'{name}_{loader.split("_")[0]}.json')))
    for stage in ('val', 'test'):
        evaluator = plain.get(f'{stage}_evaluator')
        metrics = evaluator if isinstance(evaluator, list) else [evaluator]
        if any(isinstance(m, dict) and not in_mmdet(MMDET_METRICS, m['type'])
               for m in metrics):
            # mmkd's metrics compare several models; one plain detector gets mmdet's COCO AP
            plain[f'{stage}_evaluator'] = ConfigDict(
                type='CocoMetric', metric='bbox',
                ann_file=_coco_ann_file(plain[f'{stage}_dataloader'].dataset))
    return plain

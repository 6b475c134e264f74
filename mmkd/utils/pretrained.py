"""The one switch between a config's pre-trained start (ImageNet weights) and training from
scratch, and the list of weight files a config would fetch (to pre-fill a cache offline)."""
import os.path as osp
from typing import Any, Dict, List, Tuple

import torch


def _is_pretrained_init(init_cfg: Any) -> bool:
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def _resolve_bases(node: Any, key: str) -> Any:
    """Expand every ``dict(base=<config>, **overrides)`` model below ``node`` into the plain
    config it stands for, so that what its base config brings (for example a packaged mmdet
    config's ``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')``) can
    be seen and switched."""
    from mmkd.models.distillers.base_kdml_distiller import resolve_model_cfg
    if isinstance(node, dict):
        if 'base' in node and isinstance(node['base'], str):
            node = resolve_model_cfg(node, key)
        return type(node)({k: _resolve_bases(v, f'{key}.{k}') for k, v in node.items()})
    if isinstance(node, (list, tuple)):
        return type(node)(_resolve_bases(v, f'{key}[{i}]') for i, v in enumerate(node))
    return node


def _walk(node: Any, key: str, found: List[Tuple[str, Any]]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == 'pretrained' and v is True:
                found.append((f'{key}.pretrained', node))
            elif k == 'init_cfg':
                items = v if isinstance(v, list) else [v]
                if any(_is_pretrained_init(i) for i in items):
                    found.append((f'{key}.init_cfg', node))
            _walk(v, f'{key}.{k}', found)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _walk(v, f'{key}[{i}]', found)


def from_scratch(cfg) -> List[str]:
    """Make every model of ``cfg`` start from random initialisation, in place.

    Every ``pretrained=True`` (``TorchvisionBackbone``'s ImageNet weights) becomes False and
    every ``init_cfg`` entry of type ``'Pretrained'`` (mmdet's way of bringing ImageNet
    weights, also inside ``mmdet::`` base configs, which are expanded for that) is removed.
    An offline teacher's ``teacher_ckpt`` and a run's ``load_from`` are trained weights, not an
    initialisation, and stay.

    Args:
        cfg (Config | dict): A run config with a ``model``.

    Returns:
        list[str]: The config keys that were switched (for the log), e.g.
        ``['model.students[0].backbone.pretrained']``.
    """
    if cfg.get('model') is None:
        return []
    cfg['model'] = _resolve_bases(cfg['model'], 'model')
    found: List[Tuple[str, Any]] = []
    _walk(cfg['model'], 'model', found)
    for key, node in found:
        if key.endswith('.pretrained'):
            node['pretrained'] = False
        else:
            items = node['init_cfg'] if isinstance(node['init_cfg'], list) else [
                node['init_cfg']]
            kept = [i for i in items if not _is_pretrained_init(i)]
            node['init_cfg'] = kept if len(kept) > 1 else (kept[0] if kept else None)
    return [key for key, _ in found]


def pretrained_files(cfg) -> List[Dict[str, str]]:
    """The weight files the models of ``cfg`` load at initialisation, where each is cached.

    torchvision (``pretrained=True``) and mmengine (``torchvision://`` and ``http(s)://``
    checkpoints) both read ``$TORCH_HOME/hub/checkpoints/<file name of the URL>`` when the file
    is there and download it only otherwise, so copying the files there lets a machine without
    internet run the pre-trained recipe.

    Returns:
        list[dict]: ``key`` (config key), ``url``, ``path`` (the cache file) and ``present``
        ('yes' / 'no'), one per distinct file.
    """
    import torchvision
    from mmengine.runner.checkpoint import get_torchvision_models
    model = _resolve_bases(cfg['model'], 'model')
    found: List[Tuple[str, Any]] = []
    _walk(model, 'model', found)
    cache = osp.join(torch.hub.get_dir(), 'checkpoints')
    rows, seen = [], set()
    for key, node in found:
        urls = []
        if key.endswith('.pretrained'):
            weights = torchvision.models.get_model_weights(node['arch'])
            urls.append(weights.DEFAULT.url)
        else:
            items = node['init_cfg'] if isinstance(node['init_cfg'], list) else [
                node['init_cfg']]
            for item in filter(_is_pretrained_init, items):
                ckpt = item['checkpoint']
                if ckpt.startswith(('torchvision://', 'modelzoo://')):
                    ckpt = get_torchvision_models()[ckpt.split('://', 1)[1]]
                urls.append(ckpt)
        for url in urls:
            if url in seen:
                continue
            seen.add(url)
            local = not url.startswith(('http://', 'https://'))
            path = url if local else osp.join(cache, osp.basename(url))
            rows.append(dict(key=key, url=url, path=path,
                             present='yes' if osp.exists(path) else 'no'))
    return rows

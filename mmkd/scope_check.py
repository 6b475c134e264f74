"""mmkd types in configs of another scope: name the ones written without the ``mmkd.`` prefix.

In a config with ``default_scope='mmdet'`` mmengine looks every ``type`` up in mmdet's
registries (and mmengine's), nested configs included, and mmkd's registries are children of
mmdet's, so only ``'mmkd.<Name>'`` reaches them. A forgotten prefix ends in mmengine's bare
``KeyError: 'X is not in the mmdet::model registry'``; this check names the key and the fix
before anything is built.
"""
from typing import Iterator, List, Optional, Tuple

from mmengine.registry import DefaultScope, Registry

import mmkd.registry as mmkd_registry

_REGISTRIES = [r for r in vars(mmkd_registry).values() if isinstance(r, Registry)]
# What the Runner builds from a whole config; other top-level keys are plain variables.
_RUNNER_KEYS = ('model', 'model_wrapper_cfg', 'custom_hooks', 'default_hooks',
                'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'val_cfg',
                'test_cfg', 'val_evaluator', 'test_evaluator', 'optim_wrapper',
                'param_scheduler', 'visualizer', 'log_processor', 'tta_model', 'tta_pipeline')


def _types(value, key: str) -> Iterator[Tuple[str, str]]:
    """(config key, type) of every ``type`` string in ``value``, nested ones too."""
    if isinstance(value, dict):
        if isinstance(value.get('type'), str):
            yield f'{key}.type' if key else 'type', value['type']
        for k, v in value.items():
            if k != 'type':
                yield from _types(v, f'{key}.{k}' if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _types(v, f'{key}[{i}]')


def _resolves_in(scope: str, name: str) -> bool:
    """Whether ``name`` is found from ``scope`` without a prefix, in any registry."""
    for registry in _REGISTRIES:
        root = registry._get_root_registry()
        target = root._search_child(scope) or root
        if target.get(name) is not None:
            return True
    return False


def unprefixed_mmkd_types(cfg: dict, scope: str, key: str = '') -> List[Tuple[str, str]]:
    """(config key, type) of the mmkd types in ``cfg`` that ``scope`` cannot find: in what the
    Runner builds when ``cfg`` is a whole config (``key=''``), else everywhere in it."""
    if scope == 'mmkd':
        return []
    mmkd_names = set()
    for registry in _REGISTRIES:
        registry.import_from_location()
        mmkd_names |= set(registry.module_dict)
    built = {k: cfg[k] for k in _RUNNER_KEYS if k in cfg} if not key else cfg
    return [(k, t) for k, t in _types(built, key)
            if '.' not in t and t in mmkd_names and not _resolves_in(scope, t)]


def check_mmkd_prefixes(cfg: dict, key: str = '', scope: Optional[str] = None) -> None:
    """Raise when ``cfg`` (a whole config, or the part at ``key``) names an mmkd type without
    the ``mmkd.`` prefix that its scope needs. ``scope`` defaults to the config's
    ``default_scope``, else the current default scope; in the ``mmkd`` scope nothing needs it.

    Raises:
        ValueError: Naming every such key and type, and the two fixes.
    """
    if scope is None:
        current = DefaultScope.get_current_instance()
        scope = cfg.get('default_scope') or (current.scope_name if current else 'mmengine')
    found = unprefixed_mmkd_types(cfg, scope, key)
    if found:
        listed = ', '.join(f'{k} = {t!r}' for k, t in found)
        first = found[0][1]
        raise ValueError(
            f'{listed}: mmkd type{"s" if len(found) > 1 else ""} in a config whose scope is '
            f"{scope!r}, where mmengine does not find {'them' if len(found) > 1 else 'it'} "
            f"unprefixed: write type='mmkd.{first}' (with scope {scope!r} every mmkd type "
            "needs the prefix, nested ones too), or set default_scope='mmkd'")

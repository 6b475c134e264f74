"""Evaluation loads its checkpoint strictly: every key and shape of the model must be in it.

mmengine's ``load_from`` loads with ``strict=False`` and only warns, so a checkpoint of another
architecture is evaluated with part of its weights random and prints a full results table.
"""
import re
from typing import Dict, List

from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from torch import Tensor, nn

_SHOWN = 5


def _examples(items: List[str]) -> str:
    return str(items[:_SHOWN])[:-1] + (', ...]' if len(items) > _SHOWN else ']')


def state_dict_mismatches(model: nn.Module, state: Dict[str, Tensor]) -> List[str]:
    """What keeps ``state`` from loading strictly into ``model``, one phrase per kind
    (missing keys, unexpected keys, other shapes); empty when it loads.

    A buffer the model has not allocated yet (a zero-size dimension, e.g. the PS-KD memory
    before training) takes its size from the checkpoint and is not a mismatch.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = []
    for key in sorted(set(own) & set(state)):
        mine, theirs = tuple(own[key].shape), tuple(getattr(state[key], 'shape', ()))
        lazy = own[key].numel() == 0 and len(mine) == len(theirs) and all(
            a in (0, b) for a, b in zip(mine, theirs))
        if mine != theirs and not lazy:
            shapes.append(f'{key}: checkpoint {theirs} vs model {mine}')
    phrases = []
    if missing:
        phrases.append(f'{len(missing)} keys of the model are missing from it, e.g. '
                       f'{_examples(missing)}')
    if unexpected:
        phrases.append(f'{len(unexpected)} keys in it are not in the model, e.g. '
                       f'{_examples(unexpected)}')
    if shapes:
        phrases.append(f'{len(shapes)} have another shape, e.g. {_examples(shapes)}')
    return phrases


def distiller_checkpoint_hint(state: dict, model) -> str:
    """The way out when a distiller's checkpoint (teacher and students in one file) meets a
    lone model: export the students; '' for any other mismatch."""
    if hasattr(model, 'students') or not any(k.startswith('students.') for k in state):
        return ''
    return (' It is a distiller checkpoint (teacher and students in one file, keys '
            "'teacher.*', 'students.<k>.*'): export the students first, python "
            'tools/export_students.py DISTILLER_CONFIG CHECKPOINT --out-dir DIR, then test '
            'DIR/student0.py with DIR/student0.pth (mmdet\'s init_detector needs those '
            'exported files too).')


def load_checkpoint_strictly(runner, filename: str, config: str) -> dict:
    """Load ``filename`` into ``runner.model`` as ``Runner.load_checkpoint`` does (through
    mmkd's checked loader: digest, allow-list; then the ``after_load_checkpoint`` hooks),
    but refuse any missing, unexpected or mis-shaped key.

    Raises:
        ValueError: Naming the checkpoint, the config and the first keys of each kind.
    """
    checkpoint = _load_checkpoint(filename, map_location='cpu')
    runner.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if isinstance(model, BaseTTAModel):  # mmdet's --tta wraps the model it loads into
        model = model.module
    state = checkpoint.get('state_dict', checkpoint)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    mismatches = state_dict_mismatches(model, state)
    if mismatches:
        raise ValueError(f'checkpoint {filename} does not match the model of config {config}: '
                         f'{"; ".join(mismatches)}. Evaluate it with the config it was trained '
                         f'with.{distiller_checkpoint_hint(state, model)}')
    _load_checkpoint_to_model(model, checkpoint, strict=True)
    runner.logger.info(f'Load checkpoint from {filename} (strict: every key and shape '
                       'matches the model)')
    return checkpoint

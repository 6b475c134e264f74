"""Checks of a training run's start that need the built model or dataset: the checkpoint
``load_from`` / ``--resume`` brings, and a batch larger than the dataset.

mmengine's ``load_from`` loads with ``strict=False`` and only logs the keys it skipped, so a
checkpoint of another architecture trains with part of its weights random and exits 0; and
``--resume`` of such a checkpoint ends in torch's optimizer-group error, naming neither file.
"""
import logging
import re

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkd.checkpoint.strict_load import distiller_checkpoint_hint, state_dict_mismatches
from mmkd.registry import HOOKS


def _state(checkpoint: dict) -> dict:
    state = checkpoint.get('state_dict', checkpoint)
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


@HOOKS.register_module()
class RunStartCheckHook(Hook):
    """Added by ``tools/train.py`` (``load_run_config``).

    * ``load_from`` / ``--resume`` of a checkpoint whose keys differ from the model's
      (missing or unexpected keys: another architecture) stops with the file, the config
      and the first keys of each kind. Keys of another shape only, the usual fine-tuning of
      a head to other classes, are skipped with a warning naming them (mmengine loads the
      rest); under ``--resume`` they stop the run too (the optimizer state cannot follow).
    * ``--resume`` of a checkpoint at or past ``train_cfg.max_epochs`` warns that the run is
      already finished and nothing is trained.
    * A train batch larger than the train set warns (the whole set becomes one batch).
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        source = runner._load_from
        if source is None:  # tools/test.py loads strictly itself
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = _state(checkpoint)
        own = model.state_dict()
        wrong_keys = set(own) != set(state)
        mismatches = state_dict_mismatches(model, state)
        flag = '--resume' if runner._resume else 'load_from'
        if mismatches and (wrong_keys or runner._resume):
            raise ValueError(
                f'{flag} {source}: the checkpoint does not match the model of config '
                f'{runner.cfg.filename}: {"; ".join(mismatches)}. It is a checkpoint of '
                f'another architecture: use one trained with this config, or the config it '
                f'was trained with.{distiller_checkpoint_hint(state, model)}')
        if mismatches:
            print_log(f'load_from {source}: {mismatches[0]}; those weights are not loaded '
                      '(they keep their initialisation), every other key is',
                      logger='current', level=logging.WARNING)
        epoch = (checkpoint.get('meta') or {}).get('epoch')
        max_epochs = getattr(runner.train_loop, 'max_epochs', None)
        if runner._resume and epoch is not None and max_epochs is not None and \
                epoch >= max_epochs:
            print_log(f'--resume {source}: the run is already finished (epoch {epoch} of '
                      f'train_cfg.max_epochs = {max_epochs}): nothing is trained. Raise '
                      'train_cfg.max_epochs to train on, or leave out --resume (with '
                      '--overwrite or another --work-dir) for a new run.',
                      logger='current', level=logging.WARNING)

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        batch_size, dataset = getattr(loader, 'batch_size', None), loader.dataset
        if batch_size and len(dataset) < batch_size:
            drop = getattr(loader, 'drop_last', False)
            what = ('drop_last=True drops it: nothing is trained' if drop else
                    f'each epoch is one batch of {len(dataset)}')
            print_log(f'train_dataloader.batch_size = {batch_size} is larger than the train '
                      f'set ({type(dataset).__name__}, {len(dataset)} samples): {what}. Lower '
                      'train_dataloader.batch_size (and the lr with it, e.g. --auto-scale-lr).',
                      logger='current', level=logging.WARNING)

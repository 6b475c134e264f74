"""Stop training at the first NaN or infinite loss, before the optimiser step.

A diverged step that reaches the optimiser turns every weight into NaN, and the next
``CheckpointHook`` save then writes a checkpoint that cannot be resumed from. Raising inside
``parse_losses`` (which mmengine calls between the forward pass and
``optim_wrapper.update_params``, in ``BaseModel.train_step`` and in its DDP wrappers alike)
stops the run while the weights, and every checkpoint on disk, are still the last good ones.
"""
import math
from typing import Dict, List, Tuple, Union

import torch
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub
from torch import Tensor


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite during training."""


def _where() -> str:
    """The runner's position as the training log shows it (1-based), from the MessageHub."""
    hub = MessageHub.get_current_instance()
    it, epoch = hub.get_info('iter'), hub.get_info('epoch')
    if it is None:
        return 'outside a runner (no iteration in the MessageHub)'
    return (f'training iteration {it + 1} (runner.iter={it})'
            + ('' if epoch is None else f', epoch {epoch + 1}'))


def _bad_terms(log_vars: Dict[str, Tensor]) -> List[str]:
    values = {key: float(value.detach()) for key, value in log_vars.items()
              if key != 'loss' and 'loss' in key}
    return [f'{key}={value:g}' for key, value in values.items() if not math.isfinite(value)]


def check_finite_loss(loss: Union[Tensor, float], log_vars: Dict[str, Tensor]) -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` (the summed loss) is NaN or infinite.

    One check of the sum per step; the individual terms are read only when the sum is bad.
    Under DDP the verdict is all-reduced, so every process stops at the same step: a process
    raising alone would leave the others waiting in the gradient all-reduce forever.
    """
    loss = torch.as_tensor(loss).detach()
    bad = (~torch.isfinite(loss)).to(torch.int32).reshape(1)
    all_reduce(bad, op='max')  # no-op without a process group
    if not bad.item():
        return
    terms = _bad_terms(log_vars)
    if terms:
        what = f'loss terms {", ".join(terms)}'
    elif torch.isfinite(loss):
        what = 'a loss term on another process (its own error names the key)'
    else:
        what = f'the summed loss ({float(loss):g}; every term is finite, their sum overflows)'
    raise NonFiniteLossError(
        f'NaN or infinite loss at {_where()}: {what}. Training stopped before the optimiser '
        'step, so the weights and the checkpoints on disk are those of the last good step. '
        'Lower the learning rate (or enable gradient clipping), check the inputs of this '
        'iteration, then resume from the last checkpoint (tools/train.py --resume).')


class FiniteLossMixin:
    """Put before ``BaseModel`` in the bases of every mmkd model:
    ``class ImageClassifier(FiniteLossMixin, BaseModel)``. Its ``parse_losses`` is mmengine's,
    followed by :func:`check_finite_loss`."""

    def parse_losses(self, losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        loss, log_vars = super().parse_losses(losses)
        check_finite_loss(loss, log_vars)
        return loss, log_vars

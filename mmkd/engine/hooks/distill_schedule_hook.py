import math
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS

RAMPS = ('linear', 'sigmoid')


def distill_ramp(t: float, begin: float, end: float, ramp: str = 'linear',
                 off_from: Optional[float] = None) -> float:
    """The factor of the distillation weights at training time ``t`` (epochs or iterations).

    ``0`` before ``begin``; from ``begin`` to ``end``, with ``x = (t − begin)/(end − begin)``,
    ``x`` (``'linear'``) or ``exp(−5(1 − x)²)`` (``'sigmoid'``, the ramp-up of Laine & Aila
    2017 and mean teacher); ``1`` from ``end`` on; ``0`` again from ``off_from`` on (when given).
    """
    if off_from is not None and t >= off_from:
        return 0.0
    if t >= end:
        return 1.0
    if t < begin:
        return 0.0
    x = (t - begin) / (end - begin)
    return x if ramp == 'linear' else math.exp(-5.0 * (1.0 - x)**2)


@HOOKS.register_module()
class DistillScheduleHook(Hook):
    """Ramps the KD and ML weights of a distiller in (and optionally off near the end).

    Before every training iteration it sets the model's ``distill_factor`` (which multiplies
    β and γ) to :func:`distill_ramp` of the current time and logs it as ``distill_factor``.
    While an online teacher and the peers are still random, their predictions would pull the
    students toward noise; the ramp lets every model learn from the labels first. The factor
    is a function of ``runner.iter`` alone, so a resumed run continues the same curve.

    Args:
        ramp (str): 'linear' or 'sigmoid'. Defaults to 'linear'.
        begin (float): Start of the ramp (factor 0 before). Defaults to 0.
        end (float): End of the ramp (factor 1 after). Defaults to 1.
        by_epoch (bool): ``begin``, ``end`` and ``off_from`` in epochs (fractional: the
            factor moves every iteration) rather than iterations. Defaults to True.
        off_from (float, optional): From then on the factor is 0 (distillation off, e.g. for
            the last epochs). Defaults to None.
    """
    priority = 'NORMAL'

    def __init__(self, ramp: str = 'linear', begin: float = 0, end: float = 1,
                 by_epoch: bool = True, off_from: Optional[float] = None):
        if ramp not in RAMPS:
            raise ValueError(f'DistillScheduleHook.ramp must be one of {RAMPS}, got {ramp!r}')
        if not 0 <= begin < end:
            raise ValueError(f'DistillScheduleHook needs 0 <= begin < end, got begin={begin}, '
                             f'end={end}')
        if off_from is not None and off_from < end:
            raise ValueError(f'DistillScheduleHook.off_from={off_from} is before end={end}')
        self.ramp, self.begin, self.end = ramp, begin, end
        self.by_epoch, self.off_from = by_epoch, off_from

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_train(self, runner) -> None:
        if not hasattr(self._model(runner), 'distill_factor'):
            raise TypeError(f'custom_hooks: DistillScheduleHook ramps a distiller\'s KD and ML '
                            f'weights, but {type(self._model(runner)).__name__} has none '
                            '(no distill_factor): remove the hook from custom_hooks')
        if self.by_epoch and not hasattr(runner.train_loop, 'max_epochs'):
            raise ValueError('DistillScheduleHook(by_epoch=True) needs an epoch-based train '
                             'loop: set by_epoch=False and give begin/end in iterations')

    def factor(self, runner) -> float:
        t = runner.iter / len(runner.train_dataloader) if self.by_epoch else runner.iter
        return distill_ramp(t, self.begin, self.end, self.ramp, self.off_from)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        factor = self.factor(runner)
        self._model(runner).distill_factor = factor
        runner.message_hub.update_scalar('train/distill_factor', factor)

import sys

from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from mmkd.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A progress bar over the test batches on stdout (mmengine's ``ProgressBar``: done /
    total, batches per second, elapsed time and ETA), on the main process only; added by
    ``tools/test.py``."""

    priority = 'VERY_LOW'

    def __init__(self):
        self.bar = None

    def before_test_epoch(self, runner) -> None:
        if runner.rank == 0:
            self.bar = ProgressBar(len(runner.test_dataloader), file=sys.stdout)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.bar is not None:
            self.bar.update()

    def after_test_epoch(self, runner, metrics=None) -> None:
        if self.bar is not None:
            self.bar.file.write('\n')
            self.bar.file.flush()
            self.bar = None

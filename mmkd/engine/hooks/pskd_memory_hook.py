from mmengine.dataset import ClassBalancedDataset, ConcatDataset, RepeatDataset
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS

_WRAPPERS = (ClassBalancedDataset, ConcatDataset, RepeatDataset)


@HOOKS.register_module()
class PSKDMemoryHook(Hook):
    """Sizes the PS-KD memory of the model to the training set before training starts.

    Runs in ``before_train``, i.e. after a resumed checkpoint restored the memory: restored rows
    are kept when their number matches the dataset, and a mismatch is an error. Models without
    PS-KD (``model.pskd=None``) are left alone, so the hook can stay in a shared runtime config.
    """

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        memory = getattr(model, 'pskd_memory', None)
        if memory is None:
            return
        dataset = runner.train_dataloader.dataset
        if isinstance(dataset, _WRAPPERS):
            # A wrapper visits a sample several times per epoch (or renumbers it), which
            # breaks PS-KD's "previous epoch's prediction of sample i".
            raise TypeError(f'train_dataloader.dataset is a {type(dataset).__name__}: PS-KD '
                            'needs each sample once per epoch with sample_idx in [0, len); '
                            'use the dataset itself')
        memory.allocate(len(dataset))

from typing import Dict

from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import nn

from mmkd.models.utils.settings_check import model_config_key
from mmkd.registry import HOOKS


def _own_classes(model: nn.Module, key: str) -> Dict[str, int]:
    """``{config key: num_classes}`` of one model: a classifier's or a multi-exit model's
    ``num_classes``, a detector's ``bbox_head.num_classes``; nothing for box regressors."""
    if isinstance(getattr(model, 'num_classes', None), int):
        return {f'{key}.num_classes': model.num_classes}
    head = getattr(model, 'bbox_head', None)
    if isinstance(getattr(head, 'num_classes', None), int):
        return {f'{key}.bbox_head.num_classes': head.num_classes}
    return {}


def model_class_counts(model: nn.Module) -> Dict[str, int]:
    """The class count of every model in ``model`` (each teacher and student of a
    distiller, or the model itself), keyed by its config key."""
    if hasattr(model, 'named_models'):
        counts = {}
        for name, sub in model.named_models().items():
            counts.update(_own_classes(sub, model_config_key(name)))
        return counts
    return _own_classes(model, 'model')


def check_num_classes(model: nn.Module, dataset, loader_key: str) -> None:
    """Raise if any model of ``model`` predicts another number of classes than ``dataset``
    (``len(dataset.metainfo['classes'])``) has; datasets without classes are not checked.

    Raises:
        ValueError: Naming both numbers, the dataset and the config keys.
    """
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if classes is None:
        return
    classes = tuple(classes)
    wrong = {k: n for k, n in model_class_counts(model).items() if n != len(classes)}
    if not wrong:
        return
    shown = classes if len(classes) <= 5 else f'({", ".join(map(repr, classes[:3]))}, ...)'
    raise ValueError(
        f'the models predict another number of classes than {loader_key}.dataset '
        f'({type(dataset).__name__}) has: {len(classes)} classes {shown}, but '
        f'{", ".join(f"{k} = {n}" for k, n in wrong.items())}. Set them to {len(classes)}, '
        'or use the dataset the config was written for.')


@HOOKS.register_module()
class NumClassesCheckHook(Hook):
    """Stops a run before its first iteration when a model's number of classes differs from
    its dataset's (``check_num_classes``): a head of 5 classes would otherwise train on 2-class
    data without a word, and 10 classes on CIFAR-100 fail deep inside the loss.

    Each dataloader is checked once the runner has built it: the train one in
    ``before_train`` (before the first iteration), the val one in ``before_val``, the test
    one in ``before_test``.
    ``tools/train.py`` and ``tools/test.py`` add this hook to every config.
    """

    priority = 'VERY_HIGH'

    def _check(self, runner, loader_key: str) -> None:
        loader = getattr(runner, loader_key)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if isinstance(model, BaseTTAModel):
            model = model.module
        check_num_classes(model, loader.dataset, loader_key)

    def before_train(self, runner) -> None:
        self._check(runner, 'train_dataloader')

    def before_val(self, runner) -> None:
        self._check(runner, 'val_dataloader')

    def before_test(self, runner) -> None:
        self._check(runner, 'test_dataloader')

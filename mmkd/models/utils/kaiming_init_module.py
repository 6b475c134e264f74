from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, kaiming_init
from torch import nn


class KaimingInitModule(BaseModule):
    """A module initialised as the BYOT / CIFAR ResNet reference codes do: Kaiming-normal
    (fan_out, ReLU) convolutions and unit BatchNorm, unless an ``init_cfg`` is given."""

    def init_weights(self) -> None:
        if self.init_cfg is not None:
            super().init_weights()
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                kaiming_init(m, mode='fan_out', nonlinearity='relu', distribution='normal')
            elif isinstance(m, nn.BatchNorm2d):
                constant_init(m, 1, bias=0)
        self._is_init = True

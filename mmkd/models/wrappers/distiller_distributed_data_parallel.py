from typing import Dict, Union

from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper, OptimWrapperDict
# mmengine's root registry, not mmkd's: the Runner looks model_wrapper_cfg.type up with
# MODEL_WRAPPERS.get of the root, which does not search the scopes of its grandchildren.
from mmengine.registry import MODEL_WRAPPERS
from torch import Tensor


@MODEL_WRAPPERS.register_module()
class DistillerDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` for mmkd distillers with one optimiser wrapper
    per model (``PerModelOptimWrapperConstructor``): mmengine's DDP ``train_step`` steps a
    single ``OptimWrapper`` only, so with an ``OptimWrapperDict`` the step is the distiller's
    ``step_per_model`` with the forward pass going through DDP (its gradient all-reduce).
    With a single wrapper it is mmengine's step unchanged. mmkd's default runtime selects it
    (``model_wrapper_cfg``); a Runner built from another runtime needs
    ``model_wrapper_cfg=dict(type='mmkd.DistillerDistributedDataParallel')``.
    """

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict]) -> Dict[str, Tensor]:
        if isinstance(optim_wrapper, OptimWrapperDict):
            return self.module.step_per_model(self, data, optim_wrapper)
        return super().train_step(data, optim_wrapper)

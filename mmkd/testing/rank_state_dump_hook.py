"""A hook that makes every rank of a (DDP) run write its own model state and loss log."""
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS


@HOOKS.register_module()
class RankStateDumpHook(Hook):
    """Writes ``rank{r}.pth`` into the work dir of every rank after training.

    mmengine saves checkpoints on rank 0 only; the tests of ``tests/test_distributed`` need
    each rank's own copy to show that DDP kept them identical (parameters, PS-KD memory). The
    file is a plain dict, readable with ``torch.load(..., weights_only=True)``:

    - ``rank``, ``world_size`` (int);
    - ``state_dict``: the unwrapped model's state dict on the CPU;
    - ``param_names``: the names of its parameters (the other entries are buffers);
    - ``iters``: one dict per training iteration of this rank, ``ids`` (the batch's
      ``sample_idx``, or ``img_id`` for detection samples) and ``losses`` (every value the
      model logged, as float: this rank's own losses, before any gradient scaling).

    Args:
        out_dir (str, optional): Folder of the files. Defaults to None (the work dir).
    """

    priority = 'VERY_LOW'

    def __init__(self, out_dir: Optional[str] = None) -> None:
        self.out_dir = out_dir
        self.iters: List[dict] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[Dict[str, torch.Tensor]] = None) -> None:
        losses = {k: float(torch.as_tensor(v).detach()) for k, v in (outputs or {}).items()}
        self.iters.append(dict(ids=_sample_ids(data_batch), losses=losses))

    def after_train(self, runner) -> None:
        rank, world_size = get_dist_info()
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        torch.save(
            dict(rank=rank, world_size=world_size, state_dict=state,
                 param_names=[n for n, _ in model.named_parameters()], iters=self.iters),
            osp.join(self.out_dir or runner.work_dir, f'rank{rank}.pth'))


def _sample_ids(data_batch) -> list:
    """``sample_idx`` of a classification batch (a dict of tensors) or the ``sample_idx`` /
    ``img_id`` of each detection data sample."""
    samples = (data_batch or {}).get('data_samples')
    if isinstance(samples, dict):
        return [int(i) for i in samples['sample_idx']]
    ids = []
    for sample in samples or []:
        value = sample.get('sample_idx', sample.get('img_id'))
        ids.append(int(value) if isinstance(value, (int, torch.Tensor)) else str(value))
    return ids

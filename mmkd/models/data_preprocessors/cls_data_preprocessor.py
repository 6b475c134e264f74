from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from mmkd.registry import MODELS

_MOD = 2**31  # keeps every product of the hash below inside int64


def _mix(x: Tensor) -> Tensor:
    """One round of a multiplicative integer hash on non-negative int64 values < 2**31."""
    x = (x * 1103515245 + 12345) % _MOD
    return x ^ (x >> 16)


def per_sample_uniform_ints(seed: int, epoch: int, sample_idx: Tensor, stream: int,
                            high: int) -> Tensor:
    """Integers in ``[0, high)`` that depend only on ``(seed, epoch, sample_idx, stream)``.

    A counter-based draw: the same sample gets the same augmentation in the same epoch whatever
    the batch composition, the number of DDP ranks or whether the run was resumed.
    """
    x = _mix(torch.full_like(sample_idx, (seed * 7919 + stream) % _MOD))
    x = _mix((x + epoch) % _MOD)
    x = _mix((x + sample_idx) % _MOD)
    x = _mix(x)
    return (x >> 4) % high


@MODELS.register_module()
class ClsDataPreprocessor(BaseDataPreprocessor):
    """Batch-level augmentation and normalisation of uint8 image batches.

    Takes ``inputs`` of shape (B, 3, H, W) uint8 (collated by ``default_collate``) and, in
    training, applies per sample a random crop of the zero-padded image (``RandomCrop(H,
    padding=pad)``) and a horizontal flip with probability 0.5, both as one vectorised gather,
    then ``(x − mean) / std``. The random draws are a hash of ``(seed, epoch, sample_idx)``
    (``seed`` defaults to the run's ``torch.initial_seed()``), so augmentation is reproducible
    across resume and identical under any number of DDP ranks.

    Args:
        mean (Sequence[float]): Per-channel mean in 0–255 pixel units.
        std (Sequence[float]): Per-channel std in 0–255 pixel units.
        pad (int): Zero padding of the random crop; 0 disables cropping. Defaults to 4.
        flip (bool): Random horizontal flip in training. Defaults to True.
        seed (int, optional): Seed of the augmentation hash. Defaults to None
            (``torch.initial_seed()``, i.e. ``randomness.seed`` of the runner).
    """

    def __init__(self,
                 mean: Sequence[float],
                 std: Sequence[float],
                 pad: int = 4,
                 flip: bool = True,
                 seed: Optional[int] = None):
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError('data_preprocessor.mean and .std need 3 values (RGB), got '
                             f'{list(mean)} and {list(std)}')
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), False)
        self.pad, self.flip, self.seed = pad, flip, seed

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data['data_samples']
        if training and (self.pad or self.flip):
            inputs = self.augment(inputs, samples['sample_idx'], self._epoch())
        inputs = (inputs.float() - self.mean) / self.std
        return dict(inputs=inputs, data_samples=samples)

    def augment(self, images: Tensor, sample_idx: Tensor, epoch: int) -> Tensor:
        """Random crop (zero padding) + horizontal flip of (B, C, H, W), one gather."""
        b, _, h, w = images.shape
        p = self.pad
        seed = torch.initial_seed() if self.seed is None else self.seed
        seed %= _MOD
        idx = sample_idx.long()
        oy = per_sample_uniform_ints(seed, epoch, idx, 0, 2 * p + 1)
        ox = per_sample_uniform_ints(seed, epoch, idx, 1, 2 * p + 1)
        ar_h = torch.arange(h, device=images.device)
        ar_w = torch.arange(w, device=images.device)
        rows = oy[:, None] + ar_h  # (B, H) rows of the padded image
        cols = ox[:, None] + ar_w  # (B, W)
        if self.flip:
            flipped = per_sample_uniform_ints(seed, epoch, idx, 2, 2).bool()
            cols = torch.where(flipped[:, None], ox[:, None] + (w - 1 - ar_w), cols)
        padded = F.pad(images, (p, p, p, p)) if p else images
        batch = torch.arange(b, device=images.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def _epoch() -> int:
        return int(MessageHub.get_current_instance().get_info('epoch', 0))

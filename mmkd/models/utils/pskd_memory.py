import torch
from mmengine import dist
from torch import Tensor, nn

from ..losses import one_hot_probs

_DTYPES = {'float32': torch.float32, 'float16': torch.float16}


class PSKDMemory(nn.Module):
    """Per-sample memory of the previous epoch's prediction (PS-KD, Kim et al. ICCV 2021).

    Row ``i`` holds the final exit's temperature-1 softmax for training sample ``i``, written
    from the same forward pass that trained on it (no extra forward). The rows are a persistent
    buffer: they are saved in checkpoints and restored on resume. Under DDP every rank
    all-gathers ``(sample_idx, probs)`` so that all copies stay identical.

    The target at epoch ``e`` (0-based) of ``E`` is
    ``ŷ = (1 − α_e)·onehot(y) + α_e·M[i]`` with ``α_e = α_T·(e + 1)/E``; in epoch 0 it is
    exactly one-hot, since no previous prediction exists.

    Args:
        num_classes (int): Number of classes C (columns).
        dtype (str): Storage dtype, ``'float32'`` or ``'float16'`` (halves the memory).
            Defaults to ``'float32'``.
    """

    def __init__(self, num_classes: int, dtype: str = 'float32'):
        super().__init__()
        if dtype not in _DTYPES:
            raise ValueError(f'model.pskd.memory_dtype must be one of {list(_DTYPES)}, '
                             f'got {dtype!r}')
        self.num_classes = num_classes
        # Allocated from the training set's length by PSKDMemoryHook (or by a checkpoint).
        self.register_buffer('rows', torch.zeros(0, num_classes, dtype=_DTYPES[dtype]))

    @property
    def num_samples(self) -> int:
        return self.rows.shape[0]

    def allocate(self, num_samples: int) -> None:
        """Make room for ``num_samples`` rows; keeps rows restored from a checkpoint."""
        if self.num_samples == num_samples:
            return
        if self.num_samples:
            raise ValueError(
                f'PS-KD memory holds {self.num_samples} rows (restored from a checkpoint) but '
                f'the training set has {num_samples} samples: resume with the dataset the '
                'checkpoint was trained on, or load the checkpoint with load_from instead')
        self.rows = self.rows.new_zeros(num_samples, self.num_classes)

    def targets(self, labels: Tensor, sample_idx: Tensor, alpha: float) -> Tensor:
        """Soft targets ``(1 − α)·onehot(y) + α·M[i]``, shape (B, C); one-hot when α = 0."""
        onehot = one_hot_probs(labels, self.num_classes)
        if alpha == 0:
            return onehot
        self._check_idx(sample_idx)
        return (1 - alpha) * onehot + alpha * self.rows[sample_idx].float()

    @torch.no_grad()
    def update(self, sample_idx: Tensor, probs: Tensor) -> None:
        """Write ``probs`` (B, C) into rows ``sample_idx`` (B,), gathered from every rank."""
        self._check_idx(sample_idx)
        if dist.get_world_size() > 1:
            sample_idx = torch.cat(dist.all_gather(sample_idx.contiguous()))
            probs = torch.cat(dist.all_gather(probs.detach().contiguous()))
        self.rows[sample_idx] = probs.detach().to(self.rows.dtype)

    def _check_idx(self, sample_idx: Tensor) -> None:
        if self.num_samples == 0:
            raise RuntimeError('PS-KD memory is not allocated: add dict(type="PSKDMemoryHook") '
                               'to custom_hooks (configs/_base_/self_distill_runtime.py does)')

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + 'rows')
        if saved is not None and saved.shape != self.rows.shape:
            # The checkpoint decides the number of rows; the hook checks it against the dataset.
            self.rows = self.rows.new_zeros(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

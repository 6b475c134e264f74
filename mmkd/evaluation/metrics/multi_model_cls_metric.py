import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from torch import Tensor

from mmkd.registry import METRICS
from ..functional import (aurc_eaurc, expected_calibration_error,
                          negative_log_likelihood, topk_error)


@METRICS.register_module()
class MultiModelClsMetric(BaseMetric):
    """Classification metrics of SPEC.md §7 for every model of a distiller.

    The model's ``predict`` returns, per batch, a list holding one
    batch-level dict (no per-sample data elements)::

        dict(sample_idx=LongTensor(B), gt_label=LongTensor(B),
             probs={'teacher': Tensor(B, C), 'student0': Tensor(B, C), ...},
             log_probs={'teacher': Tensor(B, C), ...})

    For each model name ``m`` in ``probs`` (in the order of the first batch)
    the result holds ``m/top1_acc``, ``m/top{k}_err`` for every k in
    ``topk``, ``m/nll``, ``m/ece`` (%), ``m/aurc`` and ``m/eaurc``
    (both x1000). ``log_probs`` (``log_softmax`` of the logits, what every
    mmkd classifier's ``predict`` gives) name the same models; the NLL is
    computed from them, as cross-entropy on logits, so that a true-class
    probability that underflows in float32 still counts in full. Without
    ``log_probs`` (in every batch) the NLL is ``-log`` of ``probs``, not
    floored: a zero probability gives ``inf``.

    Samples are de-duplicated by ``sample_idx``, keeping the first
    occurrence: under DDP the sampler pads the last batch by repeating
    samples, and mmengine's truncation to the dataset size counts results,
    which here are batches, so it cannot drop them. They are then scored in
    ``sample_idx`` order, so that confidence ties (AURC) rank the same
    whatever the number of processes.

    Args:
        topk (Sequence[int]): The k of each reported top-k error; k is
            clamped to the number of classes. Defaults to (1, 5).
        num_bins (int): Number of equal-width ECE bins. Defaults to 10.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix added to every key. Defaults to None,
            since the keys already start with the model name.
        save_predictions (str, optional): A ``.pt`` path. When set, every
            evaluation also writes (on rank 0, with ``torch.save``, replacing
            the file) the de-duplicated predictions it scored:
            ``dict(sample_idx=LongTensor(n), labels=LongTensor(n),
            probs={model: FloatTensor(n, C)})``, the input of
            ``tools/plot_figures.py --predictions``. Defaults to None.
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 topk: Sequence[int] = (1, 5),
                 num_bins: int = 10,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 save_predictions: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if len(topk) == 0 or any(int(k) != k or k < 1 for k in topk):
            raise ValueError('`topk` must be a non-empty sequence of '
                             f'positive integers, got {topk}')
        if num_bins < 1:
            raise ValueError(f'`num_bins` must be >= 1, got {num_bins}')
        self.topk = tuple(int(k) for k in topk)
        self.num_bins = num_bins
        self.save_predictions = save_predictions

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each batch dict as detached CPU tensors.

        Args:
            data_batch (Any): The batch from the dataloader; unused.
            data_samples (Sequence[dict]): The outputs of ``predict``: one
                dict per batch with ``sample_idx`` (B,), ``gt_label`` (B,)
                and ``probs``, a dict of (B, C) tensors keyed by model name,
                and optionally ``log_probs``, keyed by the same names.
        """
        for batch in data_samples:
            missing = {'sample_idx', 'gt_label', 'probs'} - set(batch)
            if missing:
                raise ValueError(
                    f'{type(self).__name__} needs the keys {sorted(missing)} '
                    'in the dict that predict returns per batch, got '
                    f'{sorted(batch)}')
            log_probs = batch.get('log_probs')
            if log_probs is not None and list(log_probs) != list(batch['probs']):
                raise ValueError(
                    f'`log_probs` names {sorted(log_probs)} but `probs` names '
                    f'{sorted(batch["probs"])}; predict must give both for the '
                    'same models, in the same order')
            self.results.append(
                dict(sample_idx=batch['sample_idx'].detach().long().cpu(),
                     gt_label=batch['gt_label'].detach().long().cpu(),
                     probs=_cpu_float(batch['probs']),
                     log_probs=None if log_probs is None else _cpu_float(log_probs)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute every metric of every model on the de-duplicated samples.

        Args:
            results (list[dict]): The batch dicts stored by :meth:`process`,
                gathered from all ranks.

        Returns:
            dict[str, float]: Flat dict ``{'{model}/{metric}': value}``.
        """
        if not results:
            raise ValueError(f'{type(self).__name__} got no results: the '
                             'val/test dataloader yielded no batch')
        names = list(results[0]['probs'])
        for i, batch in enumerate(results):
            differ = set(names).symmetric_difference(batch['probs'])
            if differ:
                raise ValueError(
                    f'model name(s) {sorted(differ)} are in `probs` of some '
                    f'batches but missing in others (batch {i} vs batch 0); '
                    'predict must return the same model names every batch')
        with_log = [r.get('log_probs') is not None for r in results]
        if any(with_log) and not all(with_log):
            raise ValueError(
                f'`log_probs` in some batches ({sum(with_log)} of {len(results)}) '
                'but not in others; predict must give them every batch or never')
        keep = _first_occurrence(torch.cat([r['sample_idx'] for r in results]))
        labels = torch.cat([r['gt_label'] for r in results])[keep]
        metrics, all_probs = {}, {}
        for name in names:
            probs = torch.cat([r['probs'][name] for r in results])[keep]
            all_probs[name] = probs
            log_probs = (torch.cat([r['log_probs'][name] for r in results])[keep]
                         if all(with_log) else probs.double().log())
            metrics.update(self._model_metrics(name, probs, log_probs, labels))
        if self.save_predictions and is_main_process():
            sample_idx = torch.cat([r['sample_idx'] for r in results])[keep]
            if osp.dirname(self.save_predictions):
                os.makedirs(osp.dirname(self.save_predictions), exist_ok=True)
            torch.save(dict(sample_idx=sample_idx, labels=labels, probs=all_probs),
                       self.save_predictions)
        return metrics

    def _model_metrics(self, name: str, probs: Tensor, log_probs: Tensor,
                       labels: Tensor) -> Dict[str, float]:
        """All metrics of one model, keyed ``'{name}/{metric}'``."""
        out = {'top1_acc': 100.0 - topk_error(probs, labels, 1)}
        for k in self.topk:
            out[f'top{k}_err'] = topk_error(probs, labels, k)
        out['nll'] = negative_log_likelihood(log_probs, labels)
        out['ece'] = expected_calibration_error(probs, labels, self.num_bins)
        out['aurc'], out['eaurc'] = aurc_eaurc(probs, labels)
        return {f'{name}/{key}': value for key, value in out.items()}


def _cpu_float(tensors: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Detached float32 CPU copies of a dict of tensors, in the same order."""
    return {name: t.detach().float().cpu() for name, t in tensors.items()}


def _first_occurrence(sample_idx: Tensor) -> Tensor:
    """Positions of the first occurrence of each value, by increasing value.

    Args:
        sample_idx (Tensor): Sample indices of shape (N,), possibly repeated.

    Returns:
        Tensor: Positions of shape (n_unique,), ordered by sample index
        (dataset order): AURC breaks confidence ties by the order, and
        under DDP mmengine collects the ranks' batches alternately, so
        the input order depends on the number of ranks.
    """
    unique, inverse = torch.unique(sample_idx, return_inverse=True)
    positions = torch.arange(sample_idx.numel())
    first = torch.full((unique.numel(), ), sample_idx.numel())
    first.scatter_reduce_(0, inverse, positions, reduce='amin')
    return first  # torch.unique sorts: entry j is the j-th smallest index

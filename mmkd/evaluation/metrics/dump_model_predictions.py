from typing import Sequence

from mmdet.evaluation import DumpDetResults
from mmengine.structures import BaseDataElement

from mmkd.registry import METRICS


@METRICS.register_module()
class DumpModelPredictions(DumpDetResults):
    """mmdet's ``DumpDetResults`` (``tools/test.py --out FILE.pkl``) with every model's
    predictions: besides ``pred_instances`` (the ``predict_on`` model's), a sample's
    ``model_preds`` maps each model name (``'teacher'``, ``'student0'``, ...,
    ``'ensemble'``) to a dict of its ``bboxes`` (n, 4) in original-image pixels, ``scores``
    (n, ) and ``labels`` (n, ), plain tensors like ``pred_instances``. Classification samples
    keep their per-model ``probs`` / ``log_probs``. Ground truth is dropped, as mmdet does.

    Args:
        out_file_path (str): The pickle to write (``.pkl`` or ``.pickle``).
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
    """

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        plain = []
        for sample in data_samples:  # copies: the other metrics see the samples unchanged
            preds = sample.get('model_preds') if isinstance(sample, dict) else None
            if preds:
                sample = dict(sample, model_preds={
                    name: inst.to_dict() if isinstance(inst, BaseDataElement) else inst
                    for name, inst in preds.items()})
            plain.append(sample)
        super().process(data_batch, plain)

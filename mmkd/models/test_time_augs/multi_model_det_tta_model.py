from typing import List

from mmdet.models.test_time_augs import DetTTAModel
from mmdet.structures import DetDataSample

from mmkd.registry import MODELS


@MODELS.register_module()
class MultiModelDetTTAModel(DetTTAModel):
    """mmdet's ``DetTTAModel`` for a module that predicts several detectors at once (mmkd's
    distillers: ``model_preds`` holds the teacher's, every student's and the ensemble's boxes).

    ``DetTTAModel`` flips back and merges ``pred_instances`` only and returns the first
    view's sample, so under ``tools/test.py --tta`` every other model was scored on its boxes
    of the flipped view, in flipped coordinates. Here each model's boxes, and
    ``pred_instances``, are mapped back to the original image (``bbox_flip`` by each view's
    ``flip`` / ``flip_direction``), pooled over the views and reduced by ``tta_cfg.nms``, as
    ``DetTTAModel`` does for one detector. The merged sample is built on the unflipped view
    (the first view when every view is flipped), so ground truth packed into the sample stays
    in original coordinates. Plain detectors (no ``model_preds``) are merged as by
    ``DetTTAModel``.

    Args:
        tta_cfg (dict): ``nms`` and ``max_per_img``, as for ``DetTTAModel``.
        module (dict): The wrapped model.
    """

    def merge_preds(self, data_samples_list: List[List[DetDataSample]]) -> List[DetDataSample]:
        return [self._merge_views(views) for views in data_samples_list]

    def _merge_instances(self, views: List[DetDataSample], instances: list):
        """One model's instances of every view, merged (``DetTTAModel``'s own merge)."""
        samples = [DetDataSample(metainfo=v.metainfo, pred_instances=inst)
                   for v, inst in zip(views, instances)]
        return self._merge_single_sample(samples).pred_instances

    def _merge_views(self, views: List[DetDataSample]) -> DetDataSample:
        base = next((v for v in views if not v.metainfo.get('flip', False)), views[0])
        merged = base.clone()
        if 'model_preds' in base:
            merged.model_preds = {
                name: self._merge_instances(views, [v.model_preds[name] for v in views])
                for name in base.model_preds}
        merged.pred_instances = self._merge_instances(views,
                                                      [v.pred_instances for v in views])
        return merged

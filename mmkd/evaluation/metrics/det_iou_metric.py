from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.structures import BaseDataElement

from mmkd.registry import METRICS
from ..functional.det_aggregation import (coco_ap, coco_ground_truth,
                                          miou_and_acc, model_names,
                                          padded_ground_truth,
                                          records_top1_iou, unique_images)
from ..functional.det_records import (COCO_MAX_DETS, best_boxes,
                                      ground_truth_arrays)


@METRICS.register_module()
class DetIoUMetric(BaseMetric):
    """Top-1 IoU, Acc@IoU and COCO AP of several detectors side by side.

    The metric of SPEC.md §5.4 for (mostly) single-object detection such as
    polyps. For image j with valid GT boxes G_j the IoU is
    ``IoU_j = max_{g in G_j} IoU(top-1 box of j, g)``, 0 without any
    prediction. For every model ``m`` the result holds:

    - ``m/mIoU``: mean of IoU_j in % (x100), over the images with at least
      one GT box (the IoU is undefined without one);
    - ``m/acc{100 * iou_thr}`` (``m/acc50`` by default): % of those images
      with IoU_j >= ``iou_thr``;
    - with ``with_coco``, ``m/AP`` (AP@[.5:.95]) and ``m/AP50`` in % from
      pycocotools on a COCO ground truth built in memory from the samples.
      A value of NaN means there is no GT box at all.

    Every ``data_sample`` (an mmdet ``DetDataSample`` or the dict mmengine's
    ``Evaluator`` makes of it) needs ``img_id``, ground truth and
    predictions in original-image pixels:

    - predictions: ``model_preds``, a dict model name -> ``InstanceData`` (or
      dict) with ``bboxes`` (n, 4), ``scores`` (n, ), ``labels`` (n, ), as
      mmkd's distillers give (``'teacher'``, ``'student0'``, ...,
      ``'ensemble'``); else ``pred_instances`` of a plain mmdet detector,
      named ``model_name``. mmdet rescales them to the original image.
    - ground truth: ``instances``, the dataset's annotations (a list of
      dicts with ``bbox`` xyxy, ``bbox_label``, ``ignore_flag``) when the
      pipeline packs them, which is what mmdet's ``CocoMetric`` reads
      without an ann file; else ``gt_instances`` (and ``ignored_instances``)
      from ``PackDetInputs``. mmdet's test pipelines run ``LoadAnnotations``
      after ``Resize``, so these boxes are already in original pixels; set
      ``rescale_gt=True`` only when annotations are loaded before
      ``Resize``, to divide them by ``scale_factor``.

    Ignored GT boxes (``ignore_flag``) count for neither IoU nor Acc and are
    COCO crowd regions. Images are de-duplicated by ``img_id``, keeping the
    first occurrence (the DDP sampler pads the last batch by repeating
    samples). Models are reported in the order they are first seen.

    Args:
        model_name (str): Name of the model whose ``pred_instances`` are
            evaluated when the samples carry no ``model_preds``.
            Defaults to ``'model'``.
        iou_thr (float): IoU threshold of the accuracy, in (0, 1].
            Defaults to 0.5.
        with_coco (bool): Also compute COCO AP and AP50 (keeps, per image and
            model, the 100 best boxes of each class, what COCO's
            ``maxDets=100`` looks at, instead of the single best box).
            Defaults to True.
        rescale_gt (bool): Divide ``gt_instances`` boxes by
            ``scale_factor``. Defaults to False.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix added to every key. Defaults to None,
            since the keys already start with the model name.
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 model_name: str = 'model',
                 iou_thr: float = 0.5,
                 with_coco: bool = True,
                 rescale_gt: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 < iou_thr <= 1:
            raise ValueError(f'`iou_thr` must be in (0, 1], got {iou_thr}')
        if not isinstance(model_name, str) or not model_name:
            raise ValueError('`model_name` must be a non-empty str, got '
                             f'{model_name!r}')
        self.model_name = model_name
        self.iou_thr = iou_thr
        self.with_coco = with_coco
        self.rescale_gt = rescale_gt
        # the IoU needs only the top-1 box; COCO AP looks at 100 per image and class
        self.keep_per_img = COCO_MAX_DETS if with_coco else 1
        self.acc_key = f'acc{round(100 * iou_thr)}'

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep each image's GT and each model's best boxes on the CPU.

        The loop over the samples only reads their fields; the selection of
        the best boxes (``best_boxes``) and the GT conversion
        (``ground_truth_arrays``, both in
        :mod:`mmkd.evaluation.functional.det_records`) run once per batch,
        and each image's arrays are slices of the batch's. Appends one dict
        per sample: ``img_id``, ``height``, ``width``, ``preds`` (model name
        -> record array (k, ) of ``PRED_DTYPE``, whose fields ``bboxes``
        (k, 4), ``scores`` (k, ) and ``labels`` (k, ) read as a dict's),
        ``gt_bboxes`` (G, 4),
        ``gt_labels`` (G, ) and ``gt_ignore`` (G, ). numpy arrays cost less
        than tensors to slice, to pickle across ranks and to walk in
        ``BaseMetric.evaluate`` (about 0.4 kB per image with 4 models and
        ``with_coco=False``, a tenth of per-field tensors).

        Args:
            data_batch (Any): The batch from the dataloader; unused.
            data_samples (Sequence[DetDataSample | dict]): The predicted
                samples, see the class docstring.
        """
        samples, preds = [], []
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            if 'img_id' not in sample:
                raise ValueError(f'{type(self).__name__} needs `img_id` in '
                                 'every data sample (PackDetInputs meta_keys)')
            pred = sample.get('model_preds')
            if pred is None:
                if sample.get('pred_instances') is None:
                    raise ValueError(
                        f'{type(self).__name__} needs `model_preds` or '
                        '`pred_instances` in every data sample, got keys '
                        f'{sorted(sample)}')
                pred = {self.model_name: sample['pred_instances']}
            samples.append(sample)
            preds.append(pred)
        if not samples:
            return
        # every (image, model) pair of the batch is one segment of the flat
        # tensors, so that the selection runs once for all models
        pairs = [(j, name, inst) for j, pred in enumerate(preds)
                 for name, inst in pred.items()]
        kept = best_boxes([(name, inst) for _, name, inst in pairs],
                          self.keep_per_img if self.with_coco else None)
        image_preds = [{} for _ in samples]
        for (j, name, _), rec in zip(pairs, kept):
            image_preds[j][name] = rec
        gts = ground_truth_arrays(samples, self.rescale_gt,
                                  type(self).__name__)
        for sample, pred, gt in zip(samples, image_preds, gts):
            ori_shape = sample.get('ori_shape') or (0, 0)
            self.results.append(
                dict(img_id=sample['img_id'],
                     height=int(ori_shape[0]),
                     width=int(ori_shape[1]),
                     preds=pred,
                     **gt))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute every metric of every model on the de-duplicated images.

        Args:
            results (list[dict]): The per-image dicts stored by
                :meth:`process`, gathered from all ranks.

        Returns:
            dict[str, float]: Flat dict ``{'{model}/{metric}': value}``.
        """
        if not results:
            raise ValueError(f'{type(self).__name__} got no results: the '
                             'val/test dataloader yielded no sample')
        results = unique_images(results)
        names = model_names(results)
        gt_boxes, gt_valid = padded_ground_truth(results)
        has_gt = gt_valid.any(dim=1)
        logger = MMLogger.get_current_instance()
        logger.info(
            f'{type(self).__name__}: {len(results)} images, '
            f'{int((gt_valid.sum(1) > 1).sum())} with more than one GT box, '
            f'{int((~has_gt).sum())} without any (left out of mIoU/acc)')
        coco_gt = coco_ground_truth(results, self._classes()) \
            if self.with_coco else None

        metrics = {}
        for name in names:
            preds = [r['preds'][name] for r in results]
            ious = records_top1_iou(preds, gt_boxes, gt_valid)[has_gt]
            miou, acc = miou_and_acc(ious, self.iou_thr)
            metrics[f'{name}/mIoU'] = miou
            metrics[f'{name}/{self.acc_key}'] = acc
            if coco_gt is not None:
                ap, ap50 = coco_ap(coco_gt, preds)
                metrics[f'{name}/AP'] = ap
                metrics[f'{name}/AP50'] = ap50
        return metrics

    def _classes(self) -> Sequence[str]:
        """COCO category names: the dataset's classes, else ('polyp', )."""
        meta = self.dataset_meta or {}
        return tuple(meta.get('classes') or ('polyp', ))

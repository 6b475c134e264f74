import pytest
import torch
from mmengine.structures import InstanceData

from mmkd.models.utils import (batch_ensemble, pool_nms_ensemble,
                               weighted_boxes_fusion)


def dets(boxes, scores, labels):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float).reshape(-1, 4),
                        scores=torch.tensor(scores, dtype=torch.float),
                        labels=torch.tensor(labels, dtype=torch.long))


# student A and student B on one image
A = dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.4], [0, 0])
# B[0] overlaps A[0] (same class) by IoU 81 / 119 = 0.68; B[1] is A[0]'s box
# with another class; B[2] is the best box of both students
B = dets([[1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.7, 0.95], [0, 1, 0])


def assert_dets(result, boxes, scores, labels):
    torch.testing.assert_close(result.bboxes, torch.tensor(boxes, dtype=torch.float))
    torch.testing.assert_close(result.scores, torch.tensor(scores, dtype=torch.float))
    assert result.labels.tolist() == labels


def assert_empty(result):
    assert result.bboxes.shape == (0, 4) and result.bboxes.dtype == torch.float
    assert result.scores.shape == (0, ) and result.scores.dtype == torch.float
    assert result.labels.shape == (0, ) and result.labels.dtype == torch.long


class TestPoolNMSEnsemble:

    def test_suppresses_same_class_keeps_other_class_sorted(self):
        out = pool_nms_ensemble([A, B], iou_thr=0.5)
        # B[0] (0.8) lies under A[0] (0.9) with IoU 0.68 > 0.5: suppressed;
        # B[1] has A[0]'s box but class 1: kept
        assert_dets(out, [[50, 50, 60, 60], [0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]],
                    [0.95, 0.9, 0.7, 0.4], [0, 0, 1, 0])

    def test_iou_thr_above_overlap_keeps_both(self):
        out = pool_nms_ensemble([A, B], iou_thr=0.7)
        assert out.scores.tolist() == pytest.approx([0.95, 0.9, 0.8, 0.7, 0.4])

    def test_max_per_img_keeps_the_best(self):
        out = pool_nms_ensemble([A, B], max_per_img=2)
        assert_dets(out, [[50, 50, 60, 60], [0, 0, 10, 10]], [0.95, 0.9], [0, 0])

    def test_top_score_of_any_student_survives(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(20):
            students = []
            for _ in range(3):
                xy = torch.rand(30, 2, generator=g) * 50
                boxes = torch.cat([xy, xy + 5 + torch.rand(30, 2, generator=g) * 20], 1)
                students.append(InstanceData(bboxes=boxes, scores=torch.rand(30, generator=g),
                                             labels=torch.randint(0, 2, (30, ), generator=g)))
            out = pool_nms_ensemble(students, max_per_img=5)
            best = torch.cat([s.scores for s in students]).max()
            assert out.scores[0] == best and len(out) == 5
            assert (out.scores[:-1] >= out.scores[1:]).all()

    def test_empty_inputs(self):
        empty = dets([], [], [])
        assert_empty(pool_nms_ensemble([empty, empty]))
        assert_empty(pool_nms_ensemble([]))
        # one empty student does not disturb the other
        assert_dets(pool_nms_ensemble([empty, A]), A.bboxes.tolist(), [0.9, 0.4], [0, 0])

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match='max_per_img'):
            pool_nms_ensemble([A], max_per_img=0)
        with pytest.raises(ValueError, match=r'results\[0\].*scores'):
            pool_nms_ensemble([InstanceData(bboxes=torch.zeros(1, 4), labels=torch.zeros(1))])


# two models; A2[0] and B2[0] overlap (IoU 81 / 119 = 0.68 > 0.55), B2[1] is
# of class 1, A2[1] is alone
A2 = dets([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.3], [0, 0])
B2 = dets([[1, 1, 11, 11], [0, 0, 10, 10]], [0.6, 0.5], [0, 1])


class TestWeightedBoxesFusion:

    def test_avg(self):
        out = weighted_boxes_fusion([A2, B2], conf_type='avg')
        # cluster {A2[0], B2[0]}: (0.9 * [0, 0, 10, 10] + 0.6 * [1, 1, 11, 11]) / 1.5
        # = [0.4, 0.4, 10.4, 10.4]; conf = (0.9 + 0.6) / 2 * min(2, 2) / 2 = 0.75
        # singletons: 0.5 * min(1, 2) / 2 = 0.25 and 0.3 / 2 = 0.15
        assert_dets(out, [[0.4, 0.4, 10.4, 10.4], [0, 0, 10, 10], [50, 50, 60, 60]],
                    [0.75, 0.25, 0.15], [0, 1, 0])

    def test_max(self):
        out = weighted_boxes_fusion([A2, B2], conf_type='max')
        # same boxes, conf = the cluster's max score
        assert_dets(out, [[0.4, 0.4, 10.4, 10.4], [0, 0, 10, 10], [50, 50, 60, 60]],
                    [0.9, 0.5, 0.3], [0, 1, 0])

    def test_more_boxes_than_models_and_running_fusion(self):
        a = dets([[0, 0, 10, 10], [0, 0, 10, 12]], [0.9, 0.6], [0, 0])
        b = dets([[0, 0, 12, 10]], [0.3], [0])
        # 0.6 box vs [0, 0, 10, 10]: IoU 100 / 120 = 0.83 -> fused
        #   (0.9 * [0, 0, 10, 10] + 0.6 * [0, 0, 10, 12]) / 1.5 = [0, 0, 10, 10.8]
        # 0.3 box vs the fused box: IoU 100 / (108 + 120 - 100) = 0.78 -> joins;
        #   x2 = (9 + 6 + 3.6) / 1.8 = 10.3333, y2 = (9 + 7.2 + 3) / 1.8 = 10.6667
        box = [[0, 0, 18.6 / 1.8, 19.2 / 1.8]]
        # avg: mean(0.9, 0.6, 0.3) = 0.6, times min(3 boxes, 2 models) / 2 = 1
        assert_dets(weighted_boxes_fusion([a, b]), box, [0.6], [0])
        assert_dets(weighted_boxes_fusion([a, b], conf_type='max'), box, [0.9], [0])
        # the same boxes split over 3 models: 0.6 * min(3, 3) / 3 = 0.6 too,
        # while a 4th empty model scales it to 0.6 * 3 / 4 = 0.45
        empty = dets([], [], [])
        assert_dets(weighted_boxes_fusion([a, b, empty, empty]), box, [0.45], [0])

    def test_iou_thr_skip_box_thr_and_max_per_img(self):
        # IoU 0.68 <= 0.7: no fusion, every box alone: conf = score / 2
        out = weighted_boxes_fusion([A2, B2], iou_thr=0.7)
        assert out.scores.tolist() == pytest.approx([0.45, 0.3, 0.25, 0.15])
        # 0.3 < 0.4 is skipped
        out = weighted_boxes_fusion([A2, B2], skip_box_thr=0.4)
        assert out.scores.tolist() == pytest.approx([0.75, 0.25])
        out = weighted_boxes_fusion([A2, B2], max_per_img=1)
        assert_dets(out, [[0.4, 0.4, 10.4, 10.4]], [0.75], [0])

    def test_zero_area_boxes_are_dropped(self):
        out = weighted_boxes_fusion([dets([[5, 5, 5, 9], [0, 0, 4, 4]], [0.9, 0.8], [0, 0])])
        assert_dets(out, [[0, 0, 4, 4]], [0.8], [0])

    def test_zero_scores_fuse_to_the_plain_mean(self):
        # IoU([0, 0, 10, 10], [0, 0, 10, 12]) = 100 / 120 = 0.83: one cluster
        out = weighted_boxes_fusion([dets([[0, 0, 10, 10]], [0.], [0]),
                                     dets([[0, 0, 10, 12]], [0.], [0])])
        assert_dets(out, [[0, 0, 10, 11]], [0.], [0])

    def test_empty_inputs_and_bad_conf_type(self):
        empty = dets([], [], [])
        assert_empty(weighted_boxes_fusion([empty, empty]))
        assert_empty(weighted_boxes_fusion([]))
        with pytest.raises(ValueError, match='conf_type'):
            weighted_boxes_fusion([A2], conf_type='box_and_model_avg')


class TestBatchEnsemble:

    def test_image_by_image(self):
        empty = dets([], [], [])
        per_model = [[A2, empty], [B2, A]]  # 2 models x 2 images
        out = batch_ensemble(per_model, method='wbf', conf_type='max')
        assert len(out) == 2
        assert out[0].scores.tolist() == pytest.approx([0.9, 0.5, 0.3])
        assert_dets(out[1], A.bboxes.tolist(), [0.9, 0.4], [0, 0])
        out = batch_ensemble(per_model, iou_thr=0.5, max_per_img=1)  # nms by default
        assert [o.scores.tolist() for o in out] == [pytest.approx([0.9])] * 2

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match='method'):
            batch_ensemble([[A]], method='max')
        with pytest.raises(ValueError, match='per_model'):
            batch_ensemble([[A], [A, B]])
        with pytest.raises(ValueError, match='per_model'):
            batch_ensemble([])

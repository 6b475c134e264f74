import pytest
import torch

from mmkd.evaluation.functional import pad_boxes, pad_segments, top1_iou

# garbage in padded slots: a perfect box with a huge score, which must be ignored
PAD = [0., 0., 20., 20.]


def test_pad_boxes():
    boxes, valid = pad_boxes([torch.ones(2, 4), torch.zeros(0, 4), torch.full((1, 4), 3.)])
    assert boxes.shape == (3, 2, 4)
    assert valid.tolist() == [[True, True], [False, False], [True, False]]
    assert boxes[2, 0].tolist() == [3.] * 4 and boxes[2, 1].tolist() == [0.] * 4
    scores, valid = pad_boxes([torch.tensor([0.5]), torch.tensor([0.25, 0.75])])
    assert scores.tolist() == [[0.5, 0.], [0.25, 0.75]]
    assert valid.tolist() == [[True, False], [True, True]]
    with pytest.raises(ValueError, match='tensors'):
        pad_boxes([])


def test_pad_segments_matches_pad_boxes():
    parts = [torch.ones(2, 4), torch.zeros(0, 4), torch.full((1, 4), 3.)]
    boxes, valid = pad_segments(torch.cat(parts), [2, 0, 1])
    ref_boxes, ref_valid = pad_boxes(parts)
    assert torch.equal(boxes, ref_boxes) and torch.equal(valid, ref_valid)
    # the padding value; lengths as a tensor
    scores, valid = pad_segments(torch.tensor([0.5, 0.25, 0.75]), torch.tensor([1, 2]),
                                 float('-inf'))
    assert scores.tolist() == [[0.5, float('-inf')], [0.25, 0.75]]
    assert valid.tolist() == [[True, False], [True, True]]
    # equal lengths: a view, every slot valid
    flat = torch.arange(6.)
    rows, valid = pad_segments(flat, [3, 3])
    assert rows.tolist() == [[0., 1., 2.], [3., 4., 5.]] and valid.all()
    assert rows.data_ptr() == flat.data_ptr()
    empty, valid = pad_segments(torch.zeros(0, 4), [0, 0])
    assert empty.shape == (2, 0, 4) and valid.shape == (2, 0)
    with pytest.raises(ValueError, match='sum to the 3 rows'):
        pad_segments(torch.zeros(3), [1, 1])


def test_top1_iou_hand_values():
    pred_boxes = torch.tensor([
        # 0: top-1 by score is the 0.9 box, not the perfect 0.5 box:
        #    IoU([0, 0, 10, 10], [0, 0, 20, 20]) = 100 / 400 = 0.25
        [[0, 0, 10, 10], [0, 0, 20, 20]],
        # 1: one prediction; vs GT [0, 0, 10, 10]: 0; vs GT [10, 10, 30, 20]:
        #    100 / (100 + 200 - 100) = 0.5 -> best match 0.5
        [[10, 10, 20, 20], PAD],
        # 2: no prediction -> 0
        [PAD, PAD],
        # 3: a single prediction scoring below the padding's zeros still wins;
        #    vs [0, 0, 4, 4]: 4 / (16 + 4 - 4) = 0.25, the padded GT is ignored
        [[2, 2, 4, 4], PAD],
    ], dtype=torch.float)
    pred_scores = torch.tensor([[0.9, 0.5], [0.7, 99.], [99., 99.], [-2., 0.]])
    pred_valid = torch.tensor([[True, True], [True, False], [False, False], [True, False]])
    gt_boxes = torch.tensor([
        [[0, 0, 20, 20], PAD],
        [[0, 0, 10, 10], [10, 10, 30, 20]],
        [[0, 0, 5, 5], PAD],
        [[0, 0, 4, 4], [2, 2, 4, 4]],
    ], dtype=torch.float)
    gt_valid = torch.tensor([[True, False], [True, True], [True, False], [True, False]])
    ious = top1_iou(pred_boxes, pred_scores, pred_valid, gt_boxes, gt_valid)
    assert ious.dtype == torch.float and ious.shape == (4, )
    torch.testing.assert_close(ious, torch.tensor([0.25, 0.5, 0.0, 0.25]))


def test_top1_iou_without_any_pred_or_gt_slot():
    # zero-width padded batches: every IoU is 0
    assert top1_iou(torch.zeros(2, 0, 4), torch.zeros(2, 0), torch.zeros(2, 0, dtype=torch.bool),
                    torch.ones(2, 1, 4), torch.ones(2, 1, dtype=torch.bool)).tolist() == [0., 0.]
    assert top1_iou(torch.ones(1, 1, 4), torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool),
                    torch.zeros(1, 0, 4), torch.zeros(1, 0, dtype=torch.bool)).tolist() == [0.]


def test_top1_iou_names_bad_shapes():
    ok = dict(pred_boxes=torch.zeros(2, 3, 4), pred_scores=torch.zeros(2, 3),
              pred_valid=torch.ones(2, 3, dtype=torch.bool), gt_boxes=torch.zeros(2, 1, 4),
              gt_valid=torch.ones(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match='pred_boxes'):
        top1_iou(**dict(ok, pred_boxes=torch.zeros(2, 3)))
    with pytest.raises(ValueError, match='pred_scores'):
        top1_iou(**dict(ok, pred_scores=torch.zeros(2, 2)))
    with pytest.raises(ValueError, match='gt_boxes'):
        top1_iou(**dict(ok, gt_boxes=torch.zeros(3, 1, 4)))

"""The classification metrics do not depend on how many ranks evaluated, confidence ties
included.

``MultiModelClsMetric`` stores one result per *batch*. mmengine's ``collect_results`` puts
the ranks' results together by alternating them (rank 0's first batch, rank 1's first batch,
...), so on 2 ranks the samples reach ``compute_metrics`` in another order than on 1, plus the
padding repeats. AURC sorts by confidence with a stable sort, so tied confidences (saturated
softmax outputs of a confident model are exactly 1.0) are ranked by that order: unless the
metric restores one order, DDP and single-process AURC differ. The end-to-end runs of
``tools/test.py`` (the other files here) have no exact ties; this test builds them.
"""
import math

import pytest
import torch

from mmkd.evaluation.metrics import MultiModelClsMetric

NUM, BATCH = 7, 2


def batch(indices, probs, labels):
    idx = torch.tensor(indices)
    return dict(sample_idx=idx, gt_label=labels[idx], probs=dict(model=probs[idx]))


def one_process(probs, labels):
    return [batch(list(range(s, min(s + BATCH, NUM))), probs, labels)
            for s in range(0, NUM, BATCH)]


def two_ranks(probs, labels):
    """The results list of 2 ranks as mmengine builds it: ``DefaultSampler(shuffle=False)``
    gives rank r ``indices[r::2]`` of the list padded to 8, each rank batches its own, and
    ``collect_results`` zips the ranks' result lists (then cuts to the dataset size, which
    counts samples and so drops no batch here)."""
    total = 2 * math.ceil(NUM / 2)
    indices = (list(range(NUM)) * 2)[:total]
    parts = []
    for rank in (0, 1):
        mine = indices[rank::2]
        parts.append([batch(mine[s:s + BATCH], probs, labels)
                      for s in range(0, len(mine), BATCH)])
    return [r for pair in zip(*parts) for r in pair][:NUM]


def evaluate(results):
    metric = MultiModelClsMetric(topk=(1, ))
    return metric.compute_metrics(results)


def test_two_ranks_give_the_single_process_metrics_with_tied_confidences():
    # Every sample has the same confidence; samples 1, 2 and 6 are wrong.
    probs = torch.tensor([[0.75, 0.25]]).repeat(NUM, 1)
    labels = torch.tensor([0, 1, 1, 0, 0, 0, 1])
    ddp = two_ranks(probs, labels)
    assert [i for r in ddp for i in r['sample_idx'].tolist()] == [0, 2, 1, 3, 4, 6, 5, 0]
    one, two = evaluate(one_process(probs, labels)), evaluate(ddp)
    assert set(one) == set(two)
    for key, value in one.items():
        assert two[key] == pytest.approx(value, abs=1e-12), key
    # Ties ranked in dataset order: wrong at ranks 2, 3 and 7.
    risks = [sum(w for w in (0, 1, 1, 0, 0, 0, 1)[:k]) / k for k in range(1, NUM + 1)]
    assert one['model/aurc'] == pytest.approx(1000 * sum(risks) / NUM)

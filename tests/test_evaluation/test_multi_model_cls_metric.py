import pytest
import torch
from mmengine.evaluator import Evaluator

from mmkd.evaluation import MultiModelClsMetric
from mmkd.registry import METRICS

# teacher, C=2, labels 0, 1, 1, 1: conf 0.9 ok, 0.8 wrong, 0.7 ok, 0.6 wrong
TEACHER = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
# student0: every sample correct with conf 0.8
STUDENT = [[0.8, 0.2], [0.2, 0.8], [0.2, 0.8], [0.2, 0.8]]
LABELS = [0, 1, 1, 1]

EXPECTED = {
    # top-1: samples 1 and 3 wrong -> 50 %; top-5 clamps to C=2 -> 0 %
    'teacher/top1_acc': 50.0,
    'teacher/top1_err': 50.0,
    'teacher/top5_err': 0.0,
    # -(ln 0.9 + ln 0.2 + ln 0.7 + ln 0.4) / 4
    # = (0.105361 + 1.609438 + 0.356675 + 0.916291) / 4 = 0.746941
    'teacher/nll': 0.746941,
    # float32 confidences, binned as the reference does (float64 comparison): 0.9 (0.8999999762)
    # and 0.8 (0.8000000119) share (0.8, 0.9], 0.7 (0.6999999881) and 0.6 (0.6000000238) share
    # (0.6, 0.7]: (|1 - 0.9 + 0 - 0.8| + |1 - 0.7 + 0 - 0.6|) / 4 = (0.7 + 0.3) / 4 = 0.25
    'teacher/ece': 25.0,
    # r_k = 0, 1/2, 1/3, 2/4 -> AURC = 1/3; m=2: AURC* = (1/3 + 2/4)/4
    # = 5/24 -> E-AURC = 1/8
    'teacher/aurc': 1000 / 3,
    'teacher/eaurc': 125.0,
    'student0/top1_acc': 100.0,
    'student0/top1_err': 0.0,
    'student0/top5_err': 0.0,
    # -ln 0.8 = 0.223144
    'student0/nll': 0.223144,
    # one bin, (0.8, 0.9] (float32 0.8 is 0.8000000119): |1 - 0.8| = 0.2
    'student0/ece': 20.0,
    'student0/aurc': 0.0,
    'student0/eaurc': 0.0,
}


def _batch(rows, names=('teacher', 'student0')):
    """One predict output for the samples ``rows`` (indices into 0..3)."""
    tables = dict(teacher=TEACHER, student0=STUDENT)
    return dict(sample_idx=torch.tensor(rows),
                gt_label=torch.tensor([LABELS[i] for i in rows]),
                probs={
                    name: torch.tensor([tables[name][i] for i in rows])
                    for name in names
                })


def _assert_expected(metrics):
    assert list(metrics) == list(EXPECTED)
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value, abs=1e-5), key


class TestMultiModelClsMetric:

    def test_two_batches_keys_and_values(self):
        metric = METRICS.build(dict(type='MultiModelClsMetric'))
        metric.process(None, [_batch([0, 1])])
        metric.process(None, [_batch([2, 3])])
        # size is the dataset length; results are 2 batches, none dropped
        _assert_expected(metric.evaluate(size=4))

    def test_padded_duplicates_counted_once(self):
        # As DDP padding does: samples 0 and 2 repeated in the last batch.
        # Counted twice, the teacher's top-1 error would be 2/6 = 33.3 %.
        evaluator = Evaluator(MultiModelClsMetric())
        evaluator.process([_batch([0, 1, 2])])
        evaluator.process([_batch([3, 0, 2])])
        _assert_expected(evaluator.evaluate(4))

    def test_names_follow_first_batch_and_topk(self):
        metric = MultiModelClsMetric(topk=(2, ))
        metric.process(None, [_batch([0, 1, 2, 3], ('student0', 'teacher'))])
        metrics = metric.evaluate(size=4)
        assert list(metrics)[:3] == [
            'student0/top1_acc', 'student0/top2_err', 'student0/nll'
        ]
        assert metrics['teacher/top1_acc'] == pytest.approx(50.0)

    def test_missing_model_name_raises(self):
        metric = MultiModelClsMetric()
        metric.process(None, [_batch([0, 1])])
        metric.process(None, [_batch([2, 3], ('teacher', ))])
        with pytest.raises(ValueError, match='student0'):
            metric.evaluate(size=4)

    def test_extra_model_name_raises(self):
        metric = MultiModelClsMetric()
        metric.process(None, [_batch([0, 1], ('teacher', ))])
        metric.process(None, [_batch([2, 3])])
        with pytest.raises(ValueError, match='student0'):
            metric.evaluate(size=4)

    def test_missing_batch_key_raises(self):
        batch = _batch([0, 1])
        del batch['gt_label']
        with pytest.raises(ValueError, match='gt_label'):
            MultiModelClsMetric().process(None, [batch])

    def test_process_stores_detached_float32_cpu(self):
        metric = MultiModelClsMetric()
        batch = _batch([0, 1])
        logits = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
        batch['probs']['teacher'] = logits.softmax(dim=1)
        metric.process(None, [batch])
        stored = metric.results[0]['probs']['teacher']
        assert stored.dtype == torch.float32 and not stored.requires_grad

    def test_nll_from_log_probs_counts_large_margins_in_full(self):
        # logits (0, -m), label 1: -log p[1] = m (e^-60 = 9e-27 is negligible), the value
        # cross-entropy on the logits gives; mean(60, 100, 150, 200) = 127.5. The float32
        # softmax underflows to 0 for m = 150 and 200, so only log-probabilities carry it.
        logits = torch.tensor([[0.0, -60.0], [0.0, -100.0], [0.0, -150.0], [0.0, -200.0]])
        metric = MultiModelClsMetric()
        metric.process(None, [dict(sample_idx=torch.arange(4), gt_label=torch.ones(4).long(),
                                   probs=dict(model=logits.softmax(1)),
                                   log_probs=dict(model=logits.log_softmax(1)))])
        assert metric.evaluate(size=4)['model/nll'] == pytest.approx(127.5, abs=1e-4)

    def test_without_log_probs_nll_is_log_of_probs_unfloored(self):
        # -(ln 0.9 + ln 0.2 + ln 0.7 + ln 0.4) / 4 as in EXPECTED; a zero probability of the
        # true class gives an infinite NLL, not -ln(1e-12) = 27.63.
        metric = MultiModelClsMetric()
        metric.process(None, [_batch([0, 1, 2, 3], ('teacher', ))])
        assert metric.evaluate(size=4)['teacher/nll'] == pytest.approx(0.746941, abs=1e-5)
        metric = MultiModelClsMetric()
        metric.process(None, [dict(sample_idx=torch.arange(1), gt_label=torch.ones(1).long(),
                                   probs=dict(model=torch.tensor([[1.0, 0.0]])))])
        assert metric.evaluate(size=1)['model/nll'] == float('inf')

    def test_log_probs_must_name_the_same_models_in_every_batch(self):
        batch = _batch([0, 1])
        batch['log_probs'] = dict(teacher=batch['probs']['teacher'].log())
        with pytest.raises(ValueError, match=r"`log_probs` names \['teacher'\] but `probs`"):
            MultiModelClsMetric().process(None, [batch])
        metric = MultiModelClsMetric()
        with_log = _batch([0, 1])
        with_log['log_probs'] = {k: v.log() for k, v in with_log['probs'].items()}
        metric.process(None, [with_log, _batch([2, 3])])
        with pytest.raises(ValueError, match='`log_probs` in some batches'):
            metric.evaluate(size=4)

    @pytest.mark.parametrize('kwargs, key', [(dict(topk=()), '`topk`'),
                                             (dict(topk=(0, )), '`topk`'),
                                             (dict(num_bins=0), '`num_bins`')])
    def test_invalid_args_raise(self, kwargs, key):
        with pytest.raises(ValueError, match=key):
            MultiModelClsMetric(**kwargs)

"""From every mmkd classifier's ``predict`` to ``MultiModelClsMetric``: the log-probabilities
(log_softmax of the logits) travel beside the probabilities, so the NLL is cross-entropy on the
logits even where the softmax underflows."""
import pytest
import torch

from mmkd.evaluation import MultiModelClsMetric
from mmkd.registry import MODELS

C = 10
MARGIN = 100.0  # logits (0, -100, ..., -100): float32 softmax p[y] = 3.7e-44 (subnormal)


def classifier(width=8):
    return dict(type='ImageClassifier', num_classes=C,
                backbone=dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=width))


def build(kind, **kwargs):
    torch.manual_seed(0)
    if kind == 'multi_exit':
        cfg = dict(type='MultiExitDistiller', num_classes=C,
                   backbone=dict(type='CIFARResNet', depth=18, num_stages=3, base_channels=8))
    elif kind == 'kdml':
        cfg = dict(type='KDMLDistiller', teacher=classifier(16),
                   students=[classifier(8), classifier(8)])
    else:
        cfg = classifier()
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def heads(model):
    if hasattr(model, 'exits'):
        return [e.fc for e in model.exits]
    if hasattr(model, 'students'):
        return [model.teacher.head] + [s.head for s in model.students]
    return [model.head]


def batch(b=4):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 3, 16, 16, generator=g), dict(
        gt_label=torch.arange(1, b + 1) % C, sample_idx=torch.arange(b))


CASES = [('multi_exit', {}), ('kdml', {}), ('kdml', dict(ensemble='mean')), ('classifier', {})]


@pytest.mark.parametrize('kind,kwargs', CASES)
def test_predict_carries_log_probs_of_every_model(kind, kwargs):
    model = build(kind, **kwargs)
    (out, ) = model.predict(*batch())
    assert list(out['log_probs']) == list(out['probs'])
    for name, log_p in out['log_probs'].items():
        torch.testing.assert_close(log_p.exp(), out['probs'][name], msg=name)


@pytest.mark.parametrize('kind,kwargs', CASES)
def test_metric_nll_is_the_logit_margin(kind, kwargs):
    # Every head outputs its bias (0 for class 0, -100 elsewhere); labels are never 0, so
    # -log p[y] = 100 + log(1 + 9 e^-100) = 100 for every model, the ensembles included
    # (identical members). Through the probabilities alone it would be 99.7 with float32
    # rounding of the subnormal 3.7e-44, or 27.63 with a 1e-12 floor.
    model = build(kind, **kwargs)
    with torch.no_grad():
        for fc in heads(model):
            fc.weight.zero_()
            fc.bias.fill_(-MARGIN)
            fc.bias[0] = 0.0
    metric = MultiModelClsMetric()
    x, samples = batch()
    metric.process(None, model.predict(x, samples))
    metrics = metric.evaluate(size=4)
    nll = {k: v for k, v in metrics.items() if k.endswith('/nll')}
    assert nll and all(v == pytest.approx(MARGIN, abs=1e-4) for v in nll.values()), nll

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper

from mmkd.models.losses import kd_kl_div_loss, reverse_kd_kl_div_loss
from mmkd.registry import MODELS

C = 5


def classifier(width=8, num_classes=C):
    return dict(type='ImageClassifier', num_classes=num_classes,
                backbone=dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=width))


def build(**kwargs):
    cfg = dict(type='KDMLDistiller', teacher=classifier(16),
               students=[classifier(8), classifier(8)])
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def batch(b=4):
    g = torch.Generator().manual_seed(2)
    return torch.randn(b, 3, 16, 16, generator=g), dict(
        gt_label=torch.randint(0, C, (b, ), generator=g), sample_idx=torch.arange(b))


def params(module):
    return [p.detach().clone() for p in module.parameters()]


class TestKDMLDistiller:

    def test_loss_keys_online_kdml(self):
        keys = set(build().loss(*batch()))
        assert keys == {'teacher.loss_cls', 'student0.loss_cls', 'student0.loss_kd',
                        'student0.loss_ml', 'student1.loss_cls', 'student1.loss_kd',
                        'student1.loss_ml'}

    def test_baselines_drop_their_terms(self):
        assert set(build(ml_weight=0).loss(*batch())) == {
            'teacher.loss_cls', 'student0.loss_cls', 'student0.loss_kd', 'student1.loss_cls',
            'student1.loss_kd'}
        assert set(build(teacher=None).loss(*batch())) == {
            'student0.loss_cls', 'student0.loss_ml', 'student1.loss_cls', 'student1.loss_ml'}

    def test_values_match_the_formula(self):
        model = build()
        x, samples = batch()
        losses = model.loss(x, samples)
        z = model.all_logits(x)
        y = samples['gt_label']
        t, s0, s1 = z['teacher'], z['student0'], z['student1']
        torch.testing.assert_close(losses['teacher.loss_cls'], F.cross_entropy(t, y))
        torch.testing.assert_close(losses['student0.loss_cls'], 0.1 * F.cross_entropy(s0, y))
        # beta * T^2 * KL(softmax(t/2) || softmax(s0/2)), T = 2
        expected_kd = 0.45 * 4 * F.kl_div(F.log_softmax(s0 / 2, 1), F.softmax(t / 2, 1),
                                          reduction='batchmean')
        torch.testing.assert_close(losses['student0.loss_kd'], expected_kd)
        # K = 2: one peer, 1/(K-1) = 1
        torch.testing.assert_close(losses['student1.loss_ml'], 0.45 * kd_kl_div_loss(s1, s0, 2.0))

    def test_peer_average_over_k_minus_one(self):
        model = build(students=[classifier(8)] * 3)
        x, samples = batch()
        z = model.all_logits(x)
        s = [z[f'student{k}'] for k in range(3)]
        expected = 0.45 * (kd_kl_div_loss(s[0], s[1], 2.) + kd_kl_div_loss(s[0], s[2], 2.)) / 2
        torch.testing.assert_close(model.loss(x, samples)['student0.loss_ml'], expected)

    def test_reverse_peer_direction(self):
        model = build(peer_kl_direction='self_to_peer')
        x, samples = batch()
        z = model.all_logits(x)
        expected = 0.45 * reverse_kd_kl_div_loss(z['student0'], z['student1'], 2.0)
        torch.testing.assert_close(model.loss(x, samples)['student0.loss_ml'], expected)
        # and it really is the other direction
        assert not torch.allclose(expected, 0.45 * kd_kl_div_loss(z['student0'],
                                                                  z['student1'], 2.0))

    def test_gradient_flow(self):
        model = build()
        x, samples = batch()
        losses = model.loss(x, samples)
        # Students' KD and ML terms send nothing to the teacher or to the peer.
        (losses['student0.loss_kd'] + losses['student0.loss_ml']).backward()
        assert all(p.grad is None for p in model.teacher.parameters())
        assert all(p.grad is None for p in model.students[1].parameters())
        assert torch.count_nonzero(model.students[0].head.weight.grad) > 0
        model.zero_grad()
        losses = model.loss(x, samples)
        losses['teacher.loss_cls'].backward()
        assert all(p.grad is None for s in model.students for p in s.parameters())
        assert torch.count_nonzero(model.teacher.head.weight.grad) > 0

    def test_offline_teacher_is_frozen_and_students_learn(self, tmp_path):
        teacher = MODELS.build(classifier(16))
        torch.save({'state_dict': teacher.state_dict()}, tmp_path / 'teacher.pth')
        model = build(teacher_mode='offline', teacher_ckpt=str(tmp_path / 'teacher.pth'))
        for a, b in zip(model.teacher.state_dict().values(), teacher.state_dict().values()):
            assert torch.equal(a, b)  # init_weights loaded it after initialising
        optim = OptimWrapper(torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad], lr=0.1))
        before_t, before_s = params(model.teacher), params(model.students[0])
        model.train()
        assert not model.teacher.training
        x, samples = batch()
        losses = model.train_step(dict(inputs=x, data_samples=samples), optim)
        assert 'teacher.loss_cls' not in losses
        assert all(torch.equal(a, b) for a, b in zip(before_t, params(model.teacher)))
        assert any(not torch.equal(a, b) for a, b in zip(before_s, params(model.students[0])))
        # Frozen BN statistics too: the teacher ran in eval mode.
        assert torch.equal(model.teacher.backbone.bn1.running_mean,
                           teacher.backbone.bn1.running_mean)

    def test_online_teacher_changes(self):
        model = build()
        optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
        before = params(model.teacher)
        x, samples = batch()
        model.train_step(dict(inputs=x, data_samples=samples), optim)
        assert any(not torch.equal(a, b) for a, b in zip(before, params(model.teacher)))

    def test_teacher_checkpoint_mismatch_names_keys(self, tmp_path):
        wrong = MODELS.build(classifier(8))  # narrower than the teacher config
        state = wrong.state_dict()
        state['extra.weight'] = torch.zeros(1)
        del state['head.bias']
        torch.save({'state_dict': state}, tmp_path / 'wrong.pth')
        with pytest.raises(ValueError) as err:
            build(teacher_mode='offline', teacher_ckpt=str(tmp_path / 'wrong.pth'))
        msg = str(err.value)
        assert "missing keys ['head.bias']" in msg and "unexpected keys ['extra.weight']" in msg
        assert 'backbone.conv1.weight: checkpoint (8, 3, 3, 3) vs config (16, 3, 3, 3)' in msg

    def test_max_ensemble_on_hand_made_probabilities(self):
        model = build()
        p0 = torch.tensor([[0.7, 0.2, 0.1, 0.0, 0.0]])
        p1 = torch.tensor([[0.1, 0.6, 0.3, 0.0, 0.0]])
        # max = [0.7, 0.6, 0.3, 0, 0], sum 1.6
        torch.testing.assert_close(model.ensemble_probs([p0, p1]),
                                   torch.tensor([[0.4375, 0.375, 0.1875, 0.0, 0.0]]))
        model.ensemble = 'mean'
        torch.testing.assert_close(model.ensemble_probs([p0, p1]),
                                   torch.tensor([[0.4, 0.4, 0.2, 0.0, 0.0]]))

    def test_predict_reports_every_model_and_predict_on(self):
        model = build(predict_on='student1').eval()
        x, samples = batch()
        (out, ) = model.predict(x, samples)
        assert list(out['probs']) == ['teacher', 'student0', 'student1', 'ensemble']
        torch.testing.assert_close(out['pred_scores'], out['probs']['student1'])
        torch.testing.assert_close(out['probs']['ensemble'], model.ensemble_probs(
            [out['probs']['student0'], out['probs']['student1']]))

    @pytest.mark.parametrize('kwargs,match', [
        (dict(students=[classifier()]), 'at least 2 students'),
        (dict(students=[classifier(), classifier(num_classes=3)]), 'same classes'),
        (dict(teacher_mode='offline'), 'teacher_ckpt'),
        (dict(predict_on='student7'), 'model.predict_on'),
        (dict(peer_kl_direction='both'), 'peer_kl_direction'),
        (dict(students=[]), 'at least one student'),
    ])
    def test_bad_config_raises(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            build(**kwargs)

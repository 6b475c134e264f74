"""DetKDMLDistiller's FPN feature KD (PKD / CWD) and cross-head KD (CrossKD)."""
import pytest
import torch
from mmengine.optim import OptimWrapperDict

from mmkd.engine.optimizers import PerModelOptimWrapperConstructor
from mmkd.models.losses import box_kd_loss, cwd_loss, ld_kd_loss, pkd_loss, sigmoid_kd_loss
from mmkd.models.utils import dense_predictions, head_from_layer, tower_features
from mmkd.testing import tiny_det_batch, tiny_det_distiller, tiny_detector

build, batch = tiny_det_distiller, tiny_det_batch


def same_head(width: int, head: str = 'gfl', stacked_convs: int = 2) -> dict:
    """A tiny detector of backbone width ``width`` whose FPN and head have 32 channels
    (the students' of width 8), so its tower can take theirs."""
    cfg = tiny_detector(head, width)
    cfg['neck']['out_channels'] = 32
    cfg['bbox_head'].update(in_channels=32, feat_channels=32, stacked_convs=stacked_convs)
    return cfg


def cross_build(head: str = 'gfl', **kwargs):
    return build(head, teacher=same_head(16, head), students=[same_head(8, head)] * 2,
                 **kwargs)


def features(model, x):
    return {name: det.extract_feat(x) for name, det in model.named_models().items()}


class TestFeatureKD:

    def test_pkd_keys_and_value_through_the_adapter(self):
        model = build(feature_kd=dict(type='pkd', weight=2.0, levels=(0, 2),
                                      level_weights=(1.0, 0.5)), ml_weight=0)
        x, samples = batch()
        losses = model.loss(x, samples)
        assert {k for k in losses if 'feat' in k} == {'student0.loss_kd_feat',
                                                      'student1.loss_kd_feat'}
        f = features(model, x)
        adapter = model.adapters['student0']['teacher']  # 32 -> 64 channels, one per level
        assert [m.in_channels for m in adapter] == [32, 32]
        assert [m.out_channels for m in adapter] == [64, 64]
        expected = 2.0 * (pkd_loss(adapter[0](f['student0'][0]), f['teacher'][0]) +
                          0.5 * pkd_loss(adapter[1](f['student0'][2]), f['teacher'][2]))
        torch.testing.assert_close(losses['student0.loss_kd_feat'], expected)

    def test_cwd_with_peers_needs_no_peer_adapter(self):
        model = build(feature_kd=dict(type='cwd', tau=2.0, levels=(1, ), peers=True))
        assert set(model.adapters['student0']) == {'teacher'}  # peers have 32 channels too
        x, samples = batch()
        losses = model.loss(x, samples)
        f = features(model, x)
        torch.testing.assert_close(losses['student1.loss_ml_feat'],
                                   cwd_loss(f['student1'][1], f['student0'][1], 2.0))
        torch.testing.assert_close(
            losses['student1.loss_kd_feat'],
            cwd_loss(model.adapters['student1']['teacher'][0](f['student1'][1]),
                     f['teacher'][1], 2.0))

    def test_equal_channels_build_no_adapter(self):
        model = cross_build(feature_kd=dict(type='pkd'))
        assert len(model.adapters) == 0
        assert model.trainable_models()['student0'] is model.students[0]

    def test_adapters_are_trained_by_their_students_optimiser(self):
        model = build(feature_kd=dict(type='pkd', levels=(0, )))
        optim = PerModelOptimWrapperConstructor(
            dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))(model)
        assert isinstance(optim, OptimWrapperDict)
        own = {id(p) for group in optim['student0'].optimizer.param_groups
               for p in group['params']}
        assert {id(p) for p in model.adapters['student0'].parameters()} <= own
        assert not {id(p) for p in model.adapters['student1'].parameters()} & own
        before = [p.detach().clone() for p in model.adapters.parameters()]
        x, samples = batch()
        model.train()
        model.train_step(dict(inputs=x * 255, data_samples=samples), optim)
        after = list(model.adapters.parameters())
        assert all(not torch.equal(a, b) for a, b in zip(before, after) if a.dim() == 4)

    def test_feature_kd_sends_no_gradient_to_the_targets(self):
        model = build(feature_kd=dict(type='cwd', peers=True))
        losses = model.loss(*batch())
        (losses['student0.loss_kd_feat'] + losses['student0.loss_ml_feat']).backward()
        assert all(p.grad is None for p in model.teacher.parameters())
        assert all(p.grad is None for p in model.students[1].parameters())
        assert torch.count_nonzero(model.students[0].neck.fpn_convs[0].conv.weight.grad) > 0

    @pytest.mark.parametrize('cfg,match', [
        (dict(type='at'), r"model.feature_kd.type must be one of \('pkd', 'cwd'\)"),
        (dict(type='pkd', tau=2.0), r"model.feature_kd.tau is a setting of type='cwd' only"),
        (dict(type='cwd', tau=0), r'model.feature_kd.tau must be > 0'),
        (dict(type='pkd', levels=(0, 5)), r'model.feature_kd.levels must be distinct FPN level '
                                          r'indices in \[0, 4\]'),
        (dict(type='pkd', levels=(0, 1), level_weights=(1.0, )),
         r'model.feature_kd.level_weights must give one weight'),
        (dict(type='pkd', weight=-1), r'model.feature_kd.weight must be >= 0'),
        (dict(type='pkd', level=1), r'model.feature_kd.level is not a setting'),
    ])
    def test_bad_settings_are_named(self, cfg, match):
        with pytest.raises(ValueError, match=match):
            build(feature_kd=cfg)

    def test_no_target_is_refused(self):
        with pytest.raises(ValueError, match='model.feature_kd has no target'):
            build(teacher=None, feature_kd=dict(type='pkd'))


class TestCrossKD:

    def test_keys_and_values_equal_the_pure_losses(self):
        model = cross_build(cross_kd=dict(layer=1, weight=0.5), box_region='all')
        x, samples = batch()
        losses = model.loss(x, samples)
        assert {k for k in losses if 'cross' in k} == {
            f'student{k}.loss_cross_{t}' for k in (0, 1) for t in ('cls', 'box', 'ld')}
        t_head = model.teacher.bbox_head
        teacher = dense_predictions(t_head, t_head(model.teacher.extract_feat(x)))
        s = model.students[0]
        tower = tower_features(s.bbox_head, s.extract_feat(x), 1)
        cross = dense_predictions(t_head, head_from_layer(t_head, tower, 1, frozen=True))
        conf = teacher.cls_logits.flatten(0, 1).sigmoid().max(1).values
        scale = torch.tensor([64.] * 4)
        torch.testing.assert_close(losses['student0.loss_cross_cls'], 0.5 * sigmoid_kd_loss(
            cross.cls_logits.flatten(0, 1), teacher.cls_logits.flatten(0, 1)))
        torch.testing.assert_close(losses['student0.loss_cross_box'], 0.5 * box_kd_loss(
            (cross.boxes / scale).flatten(0, 1), (teacher.boxes / scale).flatten(0, 1), conf))
        torch.testing.assert_close(losses['student0.loss_cross_ld'], 0.5 * 0.25 * ld_kd_loss(
            cross.dists.flatten(0, 1), teacher.dists.flatten(0, 1), conf))

    @pytest.mark.parametrize('head', ['gfl', 'atss', 'retinanet', 'fcos'])
    def test_student_outputs_unchanged_and_no_gradient_to_the_online_teacher(self, head):
        plain = cross_build(head)
        crossed = cross_build(head, cross_kd=dict(layer=1))
        x, samples = batch()
        plain_losses, losses = plain.loss(x, samples), crossed.loss(x, samples)
        for key, value in plain_losses.items():  # the student's own path is the same
            torch.testing.assert_close(losses[key], value)
        assert crossed.teacher_mode == 'online' and crossed.teacher.training
        cross = sum(v for k, v in losses.items() if k.startswith('student0.loss_cross_'))
        cross.backward()
        assert all(p.grad is None for p in crossed.teacher.parameters())
        assert all(p.grad is None for p in crossed.students[1].parameters())
        student = crossed.students[0]
        # the gradient flows through the teacher's layers into the student's first tower conv
        assert torch.count_nonzero(student.bbox_head.cls_convs[0].conv.weight.grad) > 0
        assert student.bbox_head.cls_convs[1].conv.weight.grad is None

    def test_online_step_teacher_moves_by_its_own_loss_only(self):
        model = cross_build(cross_kd=dict(layer=1), kd_weight=0, ml_weight=0)
        x, samples = batch()
        losses = model.loss(x, samples)
        own, _ = model.parse_losses({k: v for k, v in losses.items() if k.startswith('teacher.')})
        grads = torch.autograd.grad(own, list(model.teacher.parameters()), allow_unused=True)
        model.zero_grad(set_to_none=True)
        losses = model.loss(x, samples)
        model.parse_losses(losses)[0].backward()  # every model's loss, cross terms too
        for p, g in zip(model.teacher.parameters(), grads):
            if g is None:
                assert p.grad is None or not torch.count_nonzero(p.grad)
            else:
                torch.testing.assert_close(p.grad, g)

    def test_incompatible_towers_are_refused_at_build(self):
        with pytest.raises(ValueError) as error:
            build(cross_kd=dict(layer=1))  # teacher head 64 channels, students 32
        assert str(error.value) == (
            'model.cross_kd (layer=1) cannot pass the head features of model.students[0] '
            'through the head of model.teacher: at tower layer 1 the student has '
            "feat_channels=32 and the teacher 64: the teacher's layers need the student's "
            'channel count')

    def test_other_heads_and_no_teacher_are_refused(self):
        with pytest.raises(ValueError, match='model.cross_kd needs model.teacher'):
            build(teacher=None, cross_kd=dict())
        with pytest.raises(ValueError, match=r'model.cross_kd.level is not a setting'):
            cross_build(cross_kd=dict(level=1))
        with pytest.raises(ValueError, match=r'layer must be an integer in \[0, 2\]'):
            cross_build(cross_kd=dict(layer=3))


def test_offline_teacher_with_both_terms(tmp_path):
    online = cross_build()
    torch.save({'state_dict': online.teacher.state_dict()}, tmp_path / 't.pth')
    model = cross_build(teacher_mode='offline', teacher_ckpt=str(tmp_path / 't.pth'),
                        cross_kd=dict(layer=0), feature_kd=dict(type='pkd', peers=True))
    losses = model.loss(*batch())
    assert not any(k.startswith('teacher.') for k in losses)
    assert {'student0.loss_kd_feat', 'student0.loss_ml_feat', 'student0.loss_cross_cls',
            'student0.loss_cross_box', 'student0.loss_cross_ld'} <= set(losses)
    model.parse_losses(losses)[0].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(torch.isfinite(v) for k, v in losses.items() if 'loss_kd' in k or 'cross' in k)


def test_weight_zero_switches_a_term_off():
    model = cross_build(feature_kd=dict(type='pkd', weight=0), cross_kd=dict(weight=0))
    assert model.feature_kd is None and model.cross_kd is None
    assert not any('feat' in k or 'cross' in k for k in model.loss(*batch()))


def test_the_readmes_switches_turn_each_term_on():
    """README.md's "Feature and cross-head distillation" block, as written, switches LD,
    feature KD and cross-head KD on: each term's loss keys appear for every student."""
    import os.path as osp
    import re
    from mmkd.experiments.seeded_runs import REPO_ROOT
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        readme = f.read()
    section = readme[readme.index('## Feature and cross-head distillation'):]
    block = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    scope = {}
    exec(block, {'dict': dict}, scope)
    assert set(scope['model']) == {'ld_weight', 'feature_kd', 'cross_kd'}
    model = cross_build(**scope['model'])
    x, samples = batch()
    losses = model.loss(x, samples)
    for k in range(2):
        assert {f'student{k}.loss_kd_ld', f'student{k}.loss_kd_feat',
                f'student{k}.loss_cross_cls', f'student{k}.loss_cross_box',
                f'student{k}.loss_cross_ld'} <= set(losses)

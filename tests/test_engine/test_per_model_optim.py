"""Each model optimised on its own (PerModelOptimWrapperConstructor + the distillers'
per-model step), and the wrappers' state across a checkpoint and resume."""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.runner import Runner

from mmkd.registry import MODELS
from mmkd.testing import scratch_config, tiny_det_batch, tiny_det_distiller, write_msi_tiles
from mmkd.utils import set_data_root

SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)


def tiny(width):
    return dict(type='ImageClassifier', num_classes=4,
                backbone=dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=width))


def cls_distiller(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='KDMLDistiller', teacher=tiny(16),
                              students=[tiny(8), tiny(8)], **kwargs))
    model.init_weights()
    return model


def cls_batch():
    g = torch.Generator().manual_seed(1)
    return dict(inputs=torch.randn(6, 3, 16, 16, generator=g),
                data_samples=dict(gt_label=torch.tensor([0, 1, 2, 3, 0, 1]),
                                  sample_idx=torch.arange(6)))


def per_model(model, **extra):
    return build_optim_wrapper(model, dict(
        constructor='PerModelOptimWrapperConstructor', type='OptimWrapper',
        optimizer=SGD, clip_grad=dict(max_norm=1.0), **extra))


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def boosted(model, key_prefix='student0.', factor=1e4):
    """``model`` whose loss terms of one student are multiplied by ``factor``."""
    loss = model.loss

    def scaled(*args, **kwargs):
        def times(v):  # mmdet heads give a tensor or a list of per-level tensors
            return [x * factor for x in v] if isinstance(v, list) else v * factor
        return {k: times(v) if k.startswith(key_prefix) else v
                for k, v in loss(*args, **kwargs).items()}

    model.loss = scaled
    return model


class TestConstructor:

    def test_one_wrapper_per_trainable_model(self):
        wrappers = per_model(cls_distiller())
        assert isinstance(wrappers, OptimWrapperDict)
        assert list(wrappers.keys()) == ['teacher', 'student0', 'student1']
        model = cls_distiller()
        wrappers = per_model(model)
        for name, module in model.named_models().items():
            ids = {id(p) for g in wrappers[name].optimizer.param_groups for p in g['params']}
            assert ids == {id(p) for p in module.parameters()}
            assert wrappers[name].clip_grad_kwargs == dict(max_norm=1.0)

    def test_offline_teacher_and_ml_only_have_no_teacher_wrapper(self, tmp_path):
        online = cls_distiller()
        torch.save({'state_dict': online.teacher.state_dict()}, tmp_path / 't.pth')
        offline = cls_distiller(teacher_mode='offline', teacher_ckpt=str(tmp_path / 't.pth'))
        assert list(per_model(offline).keys()) == ['student0', 'student1']
        ml = MODELS.build(dict(type='KDMLDistiller', students=[tiny(8), tiny(8)]))
        assert list(per_model(ml).keys()) == ['student0', 'student1']

    def test_per_model_overrides(self):
        wrappers = per_model(cls_distiller(), per_model=dict(
            teacher=dict(optimizer=dict(lr=0.02)), student1=dict(clip_grad=dict(max_norm=5))))
        assert wrappers['teacher'].param_groups[0]['lr'] == 0.02
        assert wrappers['teacher'].param_groups[0]['momentum'] == 0.9  # the rest shared
        assert wrappers['student0'].param_groups[0]['lr'] == 0.1
        assert wrappers['student1'].clip_grad_kwargs == dict(max_norm=5)

    def test_unknown_model_name_refused(self):
        with pytest.raises(ValueError, match=r'optim_wrapper.per_model.student7: no trainable '
                           r"model of that name; the trainable models are \['teacher'"):
            per_model(cls_distiller(), per_model=dict(student7=dict()))

    def test_plain_model_gets_one_wrapper(self):
        wrapper = per_model(MODELS.build(tiny(8)))
        assert type(wrapper) is OptimWrapper
        with pytest.raises(ValueError, match='is one model, not a distiller'):
            per_model(MODELS.build(tiny(8)), per_model=dict(teacher=dict()))

    def test_parameter_outside_every_model_refused(self):
        model = cls_distiller()
        model.extra = torch.nn.Linear(2, 2)
        with pytest.raises(ValueError, match=r"parameters \['extra.weight', 'extra.bias'\] "
                           'belong to none of the trainable models'):
            per_model(model)


class TestIsolation:
    """A student whose loss is 10⁴ times larger changes no other model's update."""

    @pytest.mark.parametrize('kind', ['cls', 'det'])
    def test_huge_student_gradient_leaves_the_others_unchanged(self, kind):
        if kind == 'cls':
            make, batch = cls_distiller, cls_batch()
        else:
            make = tiny_det_distiller
            x, samples = tiny_det_batch()
            batch = dict(inputs=list(x * 255), data_samples=samples)
        plain, loud = make(), boosted(make())
        for model in (plain, loud):
            model.train()
            model.train_step(copy.deepcopy(batch), per_model(model))
        for name in ('teacher', 'student1'):
            assert same(params(plain.named_models()[name]), params(loud.named_models()[name]))
        assert not same(params(plain.students[0]), params(loud.students[0]))

    def test_one_shared_clip_couples_the_models(self):
        # what the per-model wrappers fix: one clip_grad over all models (mmengine's default)
        plain, loud = cls_distiller(), boosted(cls_distiller())
        for model in (plain, loud):
            model.train()
            shared = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=SGD,
                                                     clip_grad=dict(max_norm=1.0)))
            model.train_step(cls_batch(), shared)
        assert not same(params(plain.teacher), params(loud.teacher))
        assert not same(params(plain.students[1]), params(loud.students[1]))

    def test_losses_and_log_vars_as_with_one_wrapper(self):
        a, b = cls_distiller(), cls_distiller()
        a.train(), b.train()
        logs = a.train_step(cls_batch(), per_model(a))
        shared = build_optim_wrapper(b, dict(type='OptimWrapper', optimizer=SGD))
        reference = b.train_step(cls_batch(), shared)
        assert list(logs) == list(reference)
        for key in logs:
            torch.testing.assert_close(logs[key], reference[key])
        # without clipping the updates agree too: the per-model step is the same step
        torch.testing.assert_close(params(a.students[0])[0], params(b.students[0])[0],
                                   rtol=0, atol=0)

    def test_wrong_wrapper_keys_named(self):
        model = cls_distiller()
        wrappers = per_model(model)
        partial = OptimWrapperDict(student0=wrappers['student0'],
                                   student1=wrappers['student1'])
        with pytest.raises(ValueError, match=r"holds wrappers for \['student0', 'student1'\], "
                           r"but the trainable models are \['teacher', 'student0', "):
            model.train_step(cls_batch(), partial)


@pytest.fixture(scope='module')
def msi_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('msi')
    write_msi_tiles(str(root), layout='kaggle', num_patients=4, tiles_per_patient=4,
                    img_size=32)
    return str(root)


def run_cfg(data_root, work_dir, epochs):
    cfg = scratch_config('configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py')
    set_data_root(cfg, data_root)
    cfg.model.teacher.backbone = tiny(16)['backbone']
    for student in cfg.model.students:
        student.backbone = tiny(8)['backbone']
    cfg.train_dataloader.update(batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.img_size = 32
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs)
    cfg.custom_hooks = [dict(type='DistillScheduleHook', begin=0, end=2)]
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    return cfg


def test_checkpoint_holds_every_wrapper_and_resume_restores_them(msi_root, tmp_path):
    full = Runner.from_cfg(run_cfg(msi_root, tmp_path / 'full', 2))
    full.train()
    assert isinstance(full.optim_wrapper, OptimWrapperDict)
    ckpt = torch.load(tmp_path / 'full' / 'epoch_1.pth', weights_only=False)
    assert set(ckpt['optimizer']) == {'teacher', 'student0', 'student1'}
    assert all(ckpt['optimizer'][n]['state'] for n in ckpt['optimizer'])  # momentum buffers
    assert set(ckpt['param_schedulers']) == {'teacher', 'student0', 'student1'}

    cfg = run_cfg(msi_root, tmp_path / 'resumed', 2)
    cfg.resume, cfg.load_from = True, str(tmp_path / 'full' / 'epoch_1.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    end_full = torch.load(tmp_path / 'full' / 'epoch_2.pth', weights_only=False)
    end_resumed = torch.load(tmp_path / 'resumed' / 'epoch_2.pth', weights_only=False)
    for name in ('teacher', 'student0', 'student1'):
        a, b = end_full['optimizer'][name]['state'], end_resumed['optimizer'][name]['state']
        assert a.keys() == b.keys()
        for i in a:
            torch.testing.assert_close(a[i]['momentum_buffer'], b[i]['momentum_buffer'])
    for key, value in end_full['state_dict'].items():
        torch.testing.assert_close(value, end_resumed['state_dict'][key])
    # the ramp went on from where it stopped: 16 tiles / batch 8 = 2 iterations an epoch,
    # the last iteration (runner.iter 3) at t = 1.5 epochs of a 2-epoch ramp: 0.75
    assert resumed.model.distill_factor == full.model.distill_factor == 0.75

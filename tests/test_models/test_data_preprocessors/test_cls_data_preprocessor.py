import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from mmkd.models.data_preprocessors import ClsDataPreprocessor
from mmkd.models.data_preprocessors.cls_data_preprocessor import per_sample_uniform_ints

MEAN, STD = (10.0, 20.0, 30.0), (2.0, 4.0, 5.0)


def _images(b, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8)


def _batch(images, sample_idx):
    sample_idx = torch.as_tensor(sample_idx, dtype=torch.long)
    return dict(inputs=images,
                data_samples=dict(gt_label=sample_idx % 7, sample_idx=sample_idx))


def _reference(images, sample_idx, seed, epoch, pad, flip=True):
    """Per sample: zero-pad, slice [oy:oy+H, ox:ox+W], then flip the width axis."""
    h, w = images.shape[2:]
    idx = torch.as_tensor(sample_idx, dtype=torch.long)
    oy = per_sample_uniform_ints(seed, epoch, idx, 0, 2 * pad + 1)
    ox = per_sample_uniform_ints(seed, epoch, idx, 1, 2 * pad + 1)
    fl = per_sample_uniform_ints(seed, epoch, idx, 2, 2)
    out = []
    for img, y, x, f in zip(images, oy.tolist(), ox.tolist(), fl.tolist()):
        crop = F.pad(img, (pad, pad, pad, pad))[:, y:y + h, x:x + w]
        out.append(crop.flip(2) if (flip and f) else crop)
    return torch.stack(out), oy, ox, fl


@pytest.fixture
def hub_epoch():
    """Set 'epoch' in the current MessageHub; restore the previous state afterwards."""
    hub = MessageHub.get_current_instance()
    missing = object()
    old = hub.runtime_info.get('epoch', missing)
    yield lambda epoch: hub.update_info('epoch', epoch)
    if old is missing:
        hub.pop_info('epoch', None)
    else:
        hub.update_info('epoch', old)


@pytest.fixture
def restore_torch_seed():
    seed, state = torch.initial_seed(), torch.random.get_rng_state()
    yield
    torch.manual_seed(seed)
    torch.random.set_rng_state(state)


class TestPerSampleUniformInts:

    def test_range_and_coverage(self):
        idx = torch.arange(512)
        oy = per_sample_uniform_ints(0, 0, idx, 0, 9)
        ox = per_sample_uniform_ints(0, 0, idx, 1, 9)
        fl = per_sample_uniform_ints(0, 0, idx, 2, 2)
        for draw, high in ((oy, 9), (ox, 9), (fl, 2)):
            assert draw.dtype == torch.long and draw.shape == (512, )
            assert draw.min() >= 0 and draw.max() < high
            # every value occurs (pad 4: offsets 0..8; both flips), none dominates
            counts = torch.bincount(draw, minlength=high)
            assert (counts > 0).all()
            assert counts.max() < 2 * 512 / high
        # the three streams are not the same draw
        assert not torch.equal(oy, ox)

    def test_depends_on_seed_epoch_and_index_only(self):
        idx = torch.tensor([5, 17, 123456, 0])
        a = per_sample_uniform_ints(3, 2, idx, 0, 9)
        # same values element-wise when computed one index at a time
        single = torch.cat([per_sample_uniform_ints(3, 2, i.view(1), 0, 9) for i in idx])
        assert torch.equal(a, single)
        many = torch.arange(64)
        base = per_sample_uniform_ints(3, 2, many, 0, 9)
        assert not torch.equal(base, per_sample_uniform_ints(4, 2, many, 0, 9))
        assert not torch.equal(base, per_sample_uniform_ints(3, 3, many, 0, 9))


class TestClsDataPreprocessor:

    def test_eval_only_normalises(self):
        images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
        images[:, 0], images[:, 1], images[:, 2] = 50, 60, 80
        images[1, 0, 3, 2] = 12
        data = _batch(images, [0, 1])
        out = ClsDataPreprocessor(MEAN, STD, seed=0)(data, training=False)
        x = out['inputs']
        assert x.dtype == torch.float32 and x.shape == (2, 3, 4, 4)
        # R (50 - 10) / 2 = 20, G (60 - 20) / 4 = 10, B (80 - 30) / 5 = 10
        assert (x[0, 0] == 20.0).all() and (x[:, 1] == 10.0).all() and (x[:, 2] == 10.0).all()
        # the odd pixel stays in place (no crop/flip): (12 - 10) / 2 = 1
        assert x[1, 0, 3, 2] == 1.0
        assert (x[1, 0] == 20.0).sum() == 15
        assert out['data_samples']['sample_idx'].tolist() == [0, 1]
        assert out['data_samples']['gt_label'].tolist() == [0, 1]

    def test_training_matches_per_sample_reference(self):
        images, idx = _images(64), torch.arange(100, 164)
        pre = ClsDataPreprocessor((0, 0, 0), (1, 1, 1), pad=4, seed=7)
        out = pre.augment(images, idx, epoch=5)
        ref, oy, ox, fl = _reference(images, idx, seed=7, epoch=5, pad=4)
        assert out.dtype == torch.uint8
        assert torch.equal(out, ref)
        # the batch exercises the interesting cases: both flips, several offsets, borders
        assert set(fl.tolist()) == {0, 1}
        assert len(set(oy.tolist())) > 3 and len(set(ox.tolist())) > 3
        assert {0, 8} & set(oy.tolist())

    def test_training_non_square_images(self):
        # H != W catches swapped row/column offsets
        images, idx = _images(32, h=6, w=10, seed=1), torch.arange(32)
        out = ClsDataPreprocessor(MEAN, STD, pad=2, seed=3).augment(images, idx, epoch=1)
        assert torch.equal(out, _reference(images, idx, seed=3, epoch=1, pad=2)[0])

    def test_forward_training_augments_then_normalises(self, hub_epoch):
        hub_epoch(2)
        images, idx = _images(8), torch.arange(8)
        out = ClsDataPreprocessor(MEAN, STD, seed=11)(_batch(images, idx), training=True)
        ref = _reference(images, idx, seed=11, epoch=2, pad=4)[0]
        mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
        torch.testing.assert_close(out['inputs'], (ref.float() - mean) / std)

    def test_no_flip_and_no_pad(self):
        images, idx = _images(16), torch.arange(16)
        no_flip = ClsDataPreprocessor(MEAN, STD, pad=4, flip=False, seed=0)
        ref = _reference(images, idx, seed=0, epoch=0, pad=4, flip=False)[0]
        assert torch.equal(no_flip.augment(images, idx, 0), ref)
        # pad=0: only flips; flipped samples are mirror images, the others unchanged
        flip_only = ClsDataPreprocessor(MEAN, STD, pad=0, flip=True, seed=0)
        out = flip_only.augment(images, idx, 0)
        fl = per_sample_uniform_ints(0, 0, idx, 2, 2).bool()
        assert torch.equal(out[fl], images[fl].flip(3))
        assert torch.equal(out[~fl], images[~fl])
        # neither: training forward is the eval forward
        plain = ClsDataPreprocessor(MEAN, STD, pad=0, flip=False, seed=0)
        data = _batch(images, idx)
        assert torch.equal(plain(data, training=True)['inputs'], plain(data)['inputs'])

    def test_same_sample_same_view_whatever_the_batch(self):
        images, idx = _images(16), torch.arange(40, 56)
        pre = ClsDataPreprocessor(MEAN, STD, seed=1)
        out = pre.augment(images, idx, 3)
        perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
        assert torch.equal(pre.augment(images[perm], idx[perm], 3), out[perm])
        # a sub-batch (another composition, e.g. another DDP rank) gets the same views
        assert torch.equal(pre.augment(images[5:9], idx[5:9], 3), out[5:9])

    def test_different_epoch_different_view(self):
        images, idx = _images(16), torch.arange(16)
        pre = ClsDataPreprocessor(MEAN, STD, seed=1)
        assert not torch.equal(pre.augment(images, idx, 0), pre.augment(images, idx, 1))
        # and a different seed changes it too
        other = ClsDataPreprocessor(MEAN, STD, seed=2)
        assert not torch.equal(pre.augment(images, idx, 0), other.augment(images, idx, 0))

    def test_seed_none_uses_torch_initial_seed(self, restore_torch_seed):
        images, idx = _images(16), torch.arange(16)
        torch.manual_seed(123)
        out = ClsDataPreprocessor(MEAN, STD, seed=None).augment(images, idx, 0)
        assert torch.equal(out, ClsDataPreprocessor(MEAN, STD, seed=123).augment(images, idx, 0))
        assert not torch.equal(
            out, ClsDataPreprocessor(MEAN, STD, seed=124).augment(images, idx, 0))

    def test_epoch_read_from_message_hub(self, hub_epoch):
        images, idx = _images(16), torch.arange(16)
        pre = ClsDataPreprocessor((0, 0, 0), (1, 1, 1), seed=5)
        data = _batch(images, idx)
        hub_epoch(3)
        out = pre(data, training=True)['inputs']
        assert torch.equal(out, pre.augment(images, idx, epoch=3).float())
        assert not torch.equal(out, pre.augment(images, idx, epoch=0).float())

    @pytest.mark.parametrize('mean,std', [((1, 2), (1, 1, 1)), ((1, 2, 3), (1, 1, 1, 1))])
    def test_bad_mean_std_length_raises(self, mean, std):
        with pytest.raises(ValueError, match=r'mean and \.std need 3 values'):
            ClsDataPreprocessor(mean, std)

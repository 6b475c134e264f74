from mmengine.config import Config

from mmkd.utils import format_metric_table, set_data_root

METRICS = {'exit1/top1_acc': 10.0, 'exit1/nll': 2.5, 'ensemble/top1_acc': 30.0,
           'ensemble/nll': 1.25}


def test_table_has_a_row_per_model_in_key_order():
    lines = format_metric_table(METRICS).splitlines()
    assert lines[0].split() == ['model', '|', 'top1_acc', '|', 'nll']
    assert lines[2].split() == ['exit1', '|', '10.000', '|', '2.500']
    assert lines[3].split() == ['ensemble', '|', '30.000', '|', '1.250']


def test_transposed_table_is_one_metric_across_models():
    lines = format_metric_table(METRICS, transpose_metric='top1_acc').splitlines()
    assert lines[0].split() == ['model', '|', 'exit1', '|', 'ensemble']
    assert lines[2].split() == ['top1_acc', '|', '10.000', '|', '30.000']


def test_set_data_root_reaches_every_loader_and_wrapped_dataset():
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2,
                                           dataset=dict(type='X', data_root='a'))),
        val_dataloader=dict(dataset=dict(type='X', data_root='a')),
        test_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(type='X', data_root='a'), dict(type='X', data_root='b')]))))
    set_data_root(cfg, 'sample')
    assert cfg.train_dataloader.dataset.dataset.data_root == 'sample'
    assert cfg.val_dataloader.dataset.data_root == 'sample'
    assert [d.data_root for d in cfg.test_dataloader.dataset.datasets] == ['sample', 'sample']

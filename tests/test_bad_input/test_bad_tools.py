"""The launch scripts from a shell without the venv, and --cfg-options values that
mmengine's DictAction cannot read."""
import argparse
import os
import shutil
import stat
import subprocess

import pytest

from mmkd.testing.torchrun import REPO_ROOT, free_port
from mmkd.utils import add_run_arguments

CONFIG = 'configs/self_distill/baseline_r18_1xb128-300e_cifar100.py'  # only passed on


def bare_shell(*args, cwd=REPO_ROOT, path='/usr/bin:/bin', port=None):
    """``args`` run by bash in an empty environment: no venv activated, no PYTHONPATH."""
    port = port or free_port()
    return subprocess.run(['env', '-i', f'PATH={path}', f'PORT={port}', 'bash', *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('script, args, usage', [
    ('tools/dist_train.sh', [CONFIG, '1'], 'usage: train.py'),
    ('tools/dist_test.sh', [CONFIG, 'no.pth', '1'], 'usage: test.py'),
])
def test_dist_scripts_use_the_project_interpreter(script, args, usage):
    # The tool's --help runs through torchrun in one process: torch, mmengine and mmkd import.
    result = bare_shell(script, *args, '--help')
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(usage), result.stdout[:500]
    assert 'not found' not in result.stderr


def test_dist_scripts_fall_back_to_python3_and_say_so(tmp_path):
    # A checkout without .venv: python3 from PATH, here a stand-in that prints its arguments.
    (tmp_path / 'tools').mkdir()
    shutil.copy(os.path.join(REPO_ROOT, 'tools', 'dist_train.sh'), tmp_path / 'tools')
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    fake = bin_dir / 'python3'
    fake.write_text('#!/bin/sh\necho "python3 $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    result = bare_shell('tools/dist_train.sh', 'cfg.py', '2', '--amp', cwd=tmp_path,
                        path=f'{bin_dir}:/usr/bin:/bin', port=29999)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f'tools/dist_train.sh: {tmp_path}/.venv/bin/python not found (make env creates it); '
        'using python3 from PATH, which needs torch, mmengine, mmdet and mmkd installed\n')
    assert result.stdout == (
        'python3 -m torch.distributed.run --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 '
        f'--nproc_per_node=2 --master_port=29999 {tmp_path}/tools/train.py cfg.py --launcher '
        'pytorch --amp\n')


# ---------------------------------------------------------------- --cfg-options
def parse(*options):
    parser = argparse.ArgumentParser(prog='train.py')
    add_run_arguments(parser)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def test_dict_values_are_parsed():
    options = parse('model.pskd=dict(alpha_t=0.5)', 'train_cfg.max_epochs=3',
                    "model.byot=dict(exits=[1, 2], temperature=-1e-3, hint_reduction='mean')",
                    'custom_hooks=[dict(type=PSKDMemoryHook)]')
    assert options == {
        'model.pskd': dict(alpha_t=0.5), 'train_cfg.max_epochs': 3,
        'model.byot': dict(exits=[1, 2], temperature=-1e-3, hint_reduction='mean'),
        'custom_hooks': [dict(type='PSKDMemoryHook')]}


def test_a_parsed_dict_merges_into_the_config():
    from mmengine.config import Config
    from mmkd.registry import MODELS
    cfg = Config(dict(model=dict(
        type='MultiExitDistiller', num_classes=10, pskd=dict(alpha_t=0.8, memory_dtype='float16'),
        backbone=dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=4))))
    cfg.merge_from_dict(parse('model.pskd=dict(alpha_t=0.5)'))
    assert cfg.model.pskd == dict(alpha_t=0.5, memory_dtype='float16')  # the other key stays
    assert MODELS.build(cfg.model).pskd == dict(alpha_t=0.5, memory_dtype='float16')


@pytest.mark.parametrize('value, dotted', [
    ('dict(alpha_t=0.5*2)', 'model.pskd.alpha_t=0.5*2'),
    ('dict(alpha_t=0.5, memory_dtype=open("x"))',
     'model.pskd.alpha_t=0.5 model.pskd.memory_dtype=open("x")'),
    ('dict(0.5)', 'model.pskd.<key>=<value>'),
    ('dict(alpha_t=0.5', 'model.pskd.<key>=<value>'),
])
def test_unreadable_dict_values_show_the_dotted_form(value, dotted, capsys):
    with pytest.raises(SystemExit):
        parse(f'model.pskd={value}')
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        'train.py: error: --cfg-options '
        f'model.pskd={value}: only dict(key=value, ...) of numbers, strings, True/False/None, '
        'lists, tuples and dicts can be read here; or set each key in dotted form, e.g. '
        f'{dotted}')

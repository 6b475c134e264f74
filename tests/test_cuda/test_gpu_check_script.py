"""tools/gpu_check.sh's decisions, checked without a GPU: DRY_RUN prints each command and
PROBE stands in for the machine ("<cuda 0/1> <arch> <torch major.minor> <CPUs>")."""
import re
import subprocess

import pytest


def dry(step, probe):
    done = subprocess.run(['bash', 'tools/gpu_check.sh', '--dry-run', step], text=True,
                          capture_output=True, env={'PROBE': probe, 'PATH': '/usr/bin:/bin',
                                                    'CUDA_HOME': '/opt/cuda'})
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize('torch_mm,std', [('2.11', 20), ('2.10', 20), ('2.9', 17), ('2.1', 17)])
def test_build_compiles_cuda_ops_for_the_gpu_with_the_right_standard(torch_mm, std):
    rc, out = dry('build', f'1 9.0 {torch_mm} 16')
    assert rc == 0, out
    assert f's/-std=c++14/-std=c++{std}/g; s/-std=c++17/-std=c++{std}/g' in out
    build = next(line for line in out.splitlines() if 'pip wheel' in line)
    for setting in ('MMCV_WITH_OPS=1', 'FORCE_CUDA=1', 'TORCH_CUDA_ARCH_LIST=9.0',
                    'MAX_JOBS=16', 'CUDA_HOME=/opt/cuda', '--no-build-isolation', '--no-index'):
        assert setting in build
    assert 'assert not mmcv_cuda_ops_missing()' in out


def test_build_and_check_refuse_a_machine_without_gpu():
    for step in ('build', 'check'):
        rc, out = dry(step, '0 none 2.9 2')
        assert rc == 1 and 'no CUDA GPU' in out


def test_check_trains_the_main_job_at_its_real_size_for_300_iterations():
    rc, out = dry('check', '1 9.0 2.11 16')
    assert rc == 0, out
    train = next(line for line in out.splitlines() if 'tools/train.py' in line)
    assert 'configs/kvasir_kdml_v3.py' in train and '--data-root data/kvasir_sample' in train
    assert '--from-scratch' in train and 'scale' not in train  # the config's 512 px
    epochs = int(re.search(r'train_cfg\.max_epochs=(\d+)', train).group(1))
    assert epochs * 96 // 16 >= 300  # 96 sample images, batch 16
    assert 'tests/test_cuda' in out
    bench = next(line for line in out.splitlines() if 'tools/benchmark.py' in line)
    assert '--device cuda' in bench and 'device_steps kdml_students' in bench


def test_prepare_fetches_the_mmcv_sdist_and_wheels_for_the_gpu_python():
    done = subprocess.run(['bash', 'tools/gpu_check.sh', '--dry-run', '--prepare'], text=True,
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert '--no-binary :all:' in done.stdout and 'mmcv==2.1.0' in done.stdout
    assert '--python-version 3.12' in done.stdout and 'mmdet==3.3.0' in done.stdout

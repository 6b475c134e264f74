"""tools/setup_env.sh's decisions, without installing anything (DRY_RUN=1, torch's view of
the machine given by PROBE='<cuda 0/1> <torch CUDA version> <sm arch> <torch major.minor>')."""
import os
import subprocess

import pytest

from mmkd.experiments.seeded_runs import REPO_ROOT


def decide(probe: str, **env) -> str:
    out = subprocess.run(
        ['bash', os.path.join(REPO_ROOT, 'tools/setup_env.sh')], capture_output=True,
        text=True, env={**os.environ, 'DRY_RUN': '1', 'PROBE': probe, **env}, check=True)
    return out.stdout


def test_cpu_machine_builds_cpu_ops_from_the_wheelhouse_when_it_fits():
    out = decide('0 none none 2.9')
    assert "no CUDA GPU visible to torch: mmcv's CPU ops" in out
    assert 'FORCE_CUDA=0' in out and 'FORCE_CUDA=1' not in out
    assert 'c++20' not in out
    wheelhouse = os.path.isdir(os.path.join(REPO_ROOT, '..', 'shared', 'wheelhouse'))
    assert ('--find-links' in out) == wheelhouse


def test_gpu_without_cuda_home_takes_nvcc_from_nvidia_wheels_for_its_arch():
    out = decide('1 12.8 9.0 2.9', CUDA_HOME='')
    assert 'nvidia-cuda-nvcc-cu12==12.8.* nvidia-cuda-runtime-cu12==12.8.*' in out
    assert 'FORCE_CUDA=1' in out and 'TORCH_CUDA_ARCH_LIST=9.0' in out
    assert '--find-links' not in out  # the wheelhouse wheel has CPU ops only


def test_gpu_with_cuda_home_uses_its_nvcc(tmp_path):
    nvcc = tmp_path / 'bin' / 'nvcc'
    nvcc.parent.mkdir()
    nvcc.write_text('#!/bin/sh\n')
    nvcc.chmod(0o755)
    out = decide('1 12.1 8.0 2.1', CUDA_HOME=str(tmp_path), STACK='torch21')
    assert 'nvidia-cuda-nvcc' not in out
    assert f'CUDA_HOME={tmp_path}' in out and 'TORCH_CUDA_ARCH_LIST=8.0' in out


@pytest.mark.parametrize('torch_mm,cxx20', [('2.9', False), ('2.10', True), ('2.11', True)])
def test_cxx20_patch_for_torch_2_10_and_later(torch_mm, cxx20):
    out = decide(f'1 12.8 9.0 {torch_mm}', CUDA_HOME='')
    assert ('-std=c++20' in out) == cxx20
    assert ('mmcv built with -std=c++20' in out) == cxx20


def test_unknown_stack_refused():
    out = subprocess.run(['bash', os.path.join(REPO_ROOT, 'tools/setup_env.sh')],
                         capture_output=True, text=True,
                         env={**os.environ, 'STACK': 'torch1', 'DRY_RUN': '1'})
    assert out.returncode == 2
    assert 'STACK=torch1 is not a tested stack (default, torch21)' in out.stderr

"""A CPU-only mmcv on a machine whose torch sees a GPU is said at import, with what to do.

The check reads the ELF sections of mmcv's extension (nvcc's GPU code is in ``.nv_fatbin``);
here a tiny shared library compiled with and without such a section stands in for a CUDA and
a CPU-only build."""
import shutil
import subprocess

import pytest
import torch

from mmkd.utils import mmcv_cuda_check


@pytest.fixture(scope='module')
def libs(tmp_path_factory):
    if shutil.which('cc') is None:
        pytest.skip('needs a C compiler to make the stand-in libraries')
    root = tmp_path_factory.mktemp('ext')
    made = {}
    for name, source in (
            ('cuda', '__attribute__((section(".nv_fatbin"))) const char fatbin[16] = {1};\n'
                     'int op(void) { return fatbin[0]; }\n'),
            ('cpu', 'int op(void) { return 1; }\n')):
        (root / f'{name}.c').write_text(source)
        made[name] = str(root / f'{name}.so')
        subprocess.run(['cc', '-shared', '-fPIC', '-o', made[name], str(root / f'{name}.c')],
                       check=True)
    return made


def test_section_names_are_read_from_the_elf_headers(libs):
    assert '.nv_fatbin' in mmcv_cuda_check.elf_section_names(libs['cuda'])
    names = mmcv_cuda_check.elf_section_names(libs['cpu'])
    assert '.text' in names and '.dynsym' in names and '.nv_fatbin' not in names
    assert mmcv_cuda_check.elf_section_names(__file__) == []  # not an ELF file


@pytest.mark.parametrize('gpu,lib,warns', [
    (True, 'cpu', True), (True, 'cuda', False), (False, 'cpu', False), (True, None, True)])
def test_warns_only_for_cpu_ops_with_a_visible_gpu(monkeypatch, libs, gpu, lib, warns):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpu)
    monkeypatch.setattr(mmcv_cuda_check, 'mmcv_ext_path', lambda: libs[lib] if lib else '')
    assert mmcv_cuda_check.mmcv_cuda_ops_missing() is warns
    if warns:
        with pytest.warns(RuntimeWarning, match='tools/setup_env.sh'):
            mmcv_cuda_check.warn_if_mmcv_lacks_cuda_ops()


def test_this_machines_mmcv_is_read():
    """The real extension: CUDA code exactly where torch was built with CUDA and sees a GPU
    (this check runs on both kinds of machine)."""
    path = mmcv_cuda_check.mmcv_ext_path()
    assert path.endswith('.so')
    names = mmcv_cuda_check.elf_section_names(path)
    assert '.text' in names
    if torch.cuda.is_available():
        assert '.nv_fatbin' in names

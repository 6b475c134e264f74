"""A CPU-only mmcv on a machine whose torch sees a GPU, said at ``import mmkd``.

mmcv compiles its CUDA ops only when torch saw a GPU (or ``FORCE_CUDA=1``) at build time.
A wheel built elsewhere, or a build with the GPU hidden, imports fine and trains on the CPU,
but the first NMS, focal loss or RoI op on CUDA tensors (mmdet's heads, the ensemble) fails
deep inside a training step. The set-up is what to fix, so this says so up front.

The check reads the ELF section names of mmcv's compiled extension: nvcc puts the GPU code
in a ``.nv_fatbin`` section. It calls nothing in the extension and touches no GPU: mmcv's
own ``get_compiling_cuda_version()`` crashed the interpreter (SIGSEGV) with mmcv 2.1.0 built
for torch 2.11 / CUDA 13.0 on an H200 (docs/get_started.md, "Measured on a GPU").
"""
import importlib.util
import struct
import warnings
from typing import List


def elf_section_names(path: str) -> List[str]:
    """The section names of a 64-bit little-endian ELF file (a Linux x86-64 / aarch64 .so);
    [] for any other file."""
    with open(path, 'rb') as f:
        header = f.read(64)
        if len(header) < 64 or header[:6] != b'\x7fELF\x02\x01':
            return []
        shoff, = struct.unpack_from('<Q', header, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from('<HHH', header, 0x3A)
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        if shstrndx >= shnum or len(table) < shentsize * shnum:
            return []
        # Elf64_Shdr: sh_name (I), sh_type (I), sh_flags (Q), sh_addr (Q), sh_offset (Q),
        # sh_size (Q), ...
        entry = [struct.unpack_from('<IIQQQQ', table, i * shentsize) for i in range(shnum)]
        f.seek(entry[shstrndx][4])
        strings = f.read(entry[shstrndx][5])
    return [strings[name:strings.index(b'\0', name)].decode('ascii', 'replace')
            for name, *_ in entry]


def mmcv_ext_path() -> str:
    """The file of mmcv's compiled extension (``mmcv._ext``), or '' if mmcv has none."""
    spec = importlib.util.find_spec('mmcv._ext')
    return spec.origin if spec is not None and spec.origin else ''


def mmcv_cuda_ops_missing() -> bool:
    """True if torch sees a CUDA GPU but mmcv's ops were compiled without CUDA."""
    import torch
    if not torch.cuda.is_available():
        return False
    path = mmcv_ext_path()
    return not path or '.nv_fatbin' not in elf_section_names(path)


def warn_if_mmcv_lacks_cuda_ops() -> None:
    if mmcv_cuda_ops_missing():
        warnings.warn(
            'torch sees a CUDA GPU but mmcv was built without its CUDA ops: mmdet\'s NMS, focal '
            'loss and RoI ops will fail on CUDA tensors at their first use. Rebuild mmcv where '
            'torch sees the GPU (bash tools/setup_env.sh builds it with FORCE_CUDA=1 for this '
            'GPU) or install OpenMMLab\'s prebuilt CUDA wheel (docs/get_started.md, GPUs); '
            'CUDA_VISIBLE_DEVICES= trains on the CPU meanwhile.', RuntimeWarning, stacklevel=3)

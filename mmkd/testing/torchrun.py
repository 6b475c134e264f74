"""Run ``tools/train.py`` / ``tools/test.py`` as a subprocess: one process, or several under
``torchrun`` (CPU, gloo), as the tests of ``tests/test_distributed`` do."""
import glob
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
from typing import Optional, Sequence

import torch

import mmkd

BN_STATS = ('running_mean', 'running_var', 'num_batches_tracked')
# custom_imports of a config that uses RankStateDumpHook / RankInterleavedSampler
TEST_IMPORTS = ['mmkd', 'mmkd.testing.rank_state_dump_hook',
                'mmkd.testing.rank_interleaved_sampler']
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(mmkd.__file__)))


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(tool: str, args: Sequence[str], nproc: int = 1, timeout: float = 300,
             log_file: Optional[str] = None) -> str:
    """Run ``tools/<tool>.py args`` and return its output; raise with its tail on failure.

    ``nproc > 1`` launches ``python -m torch.distributed.run --nproc_per_node nproc`` on a
    free port of 127.0.0.1 with ``--launcher pytorch`` (the tools start gloo themselves on
    CPU; gloo uses the loopback interface unless ``GLOO_SOCKET_IFNAME`` is set). Every
    process gets ``OMP_NUM_THREADS=1``. A port taken between picking and binding is retried
    once.

    Args:
        tool (str): ``'train'`` or ``'test'``.
        args (Sequence[str]): Arguments of the tool.
        nproc (int): Number of processes. Defaults to 1 (no launcher).
        timeout (float): Seconds before the run is killed. Defaults to 300.
        log_file (str, optional): Also write the output here. Defaults to None.
    """
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p))
    if nproc > 1 and 'lo' in (name for _, name in socket.if_nameindex()):
        # gloo binds to the address the host name resolves to unless told otherwise; the
        # loopback interface works in containers without a network too.
        env.setdefault('GLOO_SOCKET_IFNAME', 'lo')
    script = osp.join(REPO_ROOT, 'tools', f'{tool}.py')
    for attempt in range(2):
        if nproc > 1:
            cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
                   '--master_addr=127.0.0.1', f'--master_port={free_port()}', script,
                   *args, '--launcher', 'pytorch']
        else:
            cmd = [sys.executable, script, *args]
        returncode, out = _run(cmd, env, timeout)
        if log_file:
            with open(log_file, 'a', encoding='utf-8') as f:
                f.write(f'$ {" ".join(cmd)}\n{out}\n')
        if returncode == 0:
            return out
        if attempt == 0 and 'address already in use' in out.lower():
            continue
        break
    raise RuntimeError(f'{" ".join(cmd)} exited with {returncode}:\n{out[-6000:]}')


def _run(cmd: Sequence[str], env: dict, timeout: float):
    """Run ``cmd`` in its own process group; on timeout kill the group (torchrun's workers
    included) and report exit status -9."""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return -9, f'{out}\n[killed after {timeout} s]'
    return proc.returncode, out


def read_test_metrics(work_dir: str) -> dict:
    """The metrics of a ``tools/test.py --work-dir work_dir`` run, at full precision (the
    printed table rounds): mmengine's ``LoggerHook`` writes them as the last line of
    ``<work_dir>/<timestamp>/<timestamp>.json`` after the test epoch."""
    files = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    if len(files) != 1:
        raise FileNotFoundError(f'expected one <timestamp>.json under {work_dir}, got {files}')
    with open(files[0], encoding='utf-8') as f:
        logged = json.loads(f.read().splitlines()[-1])
    return {k: v for k, v in logged.items() if '/' in k}  # not time, data_time


def rank_dumps_differ(a: dict, b: dict) -> list:
    """Keys whose tensors differ between two ``RankStateDumpHook`` files, BatchNorm running
    statistics left out: under DDP (``broadcast_buffers=True``) each forward starts from rank
    0's buffers and then updates them with the rank's own batch, so they legitimately differ
    by the last step; they never enter a training-mode forward."""
    return [k for k in a['state_dict'] if not k.endswith(BN_STATS)
            and not torch.equal(a['state_dict'][k], b['state_dict'][k])]

"""What tools/train.py and tools/test.py share: config overrides and CPU-safe DDP set-up."""
import argparse
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from .cfg_options import CfgOptionsAction
from ..scope_check import check_mmkd_prefixes
from .pretrained import from_scratch

_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point the dataset of every dataloader (and of dataset wrappers inside) at
    ``data_root``: the one override that runs a config on the bundled sample."""

    def visit(dataset):
        if isinstance(dataset, (dict, ConfigDict)):
            if 'data_root' in dataset:
                dataset['data_root'] = data_root
            for key in ('dataset', 'datasets'):
                inner = dataset.get(key)
                for d in inner if isinstance(inner, list) else [inner]:
                    visit(d)

    for name in _LOADERS:
        loader = cfg.get(name)
        if loader:
            visit(loader.get('dataset'))


def resolve_model(cfg: Config) -> None:
    """Expand a top-level ``model=dict(base='mmdet::...', **overrides)`` into a plain model
    config (the form distiller configs use for their teacher and students), so that a model
    trained alone, such as an offline teacher, is written the same way."""
    from mmkd.models.distillers import resolve_model_cfg
    if isinstance(cfg.get('model'), dict) and 'base' in cfg.model:
        extra = {k: cfg.model.pop(k) for k in ('data_preprocessor', ) if k in cfg.model}
        cfg.model = resolve_model_cfg(cfg.model, 'model')
        cfg.model.update(extra)


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Apply ``--launcher`` to ``cfg``; with torchrun on a machine without GPU, start gloo here.

    mmengine 0.10.7's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and its DDP
    wrapper passes ``device_ids=[LOCAL_RANK]``, both of which fail on CPU. Initialising the
    process group before the Runner makes it skip ``init_dist``, and ``device_ids=None`` lets
    DDP wrap CPU modules. Nothing of mmengine is patched.
    """
    cfg.launcher = launcher
    if launcher == 'pytorch' and not all(k in os.environ for k in ('RANK', 'WORLD_SIZE')):
        raise RuntimeError(
            '--launcher pytorch: RANK / WORLD_SIZE are not set, so this process was not '
            'started by torchrun. Use tools/dist_train.sh CONFIG NUM_PROCS (or '
            'tools/dist_test.sh), or `torchrun --nproc_per_node N tools/train.py ... '
            '--launcher pytorch`; for one process leave out --launcher.')
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'--launcher {launcher} needs GPUs; on CPU use torchrun with '
                         '--launcher pytorch (gloo backend)')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    cfg.env_cfg = {**cfg.get('env_cfg', {}), 'dist_cfg': dict(backend='gloo')}
    # The configured wrapper (mmkd's runtime: DistillerDistributedDataParallel) on CPU.
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)
    os.environ.setdefault('LOCAL_RANK', '0')


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options tools/train.py and tools/test.py share, with mmdet's names."""
    parser.add_argument('--work-dir', help='the dir to save logs, models and results')
    parser.add_argument('--data-root', help='use this data_root for every dataloader '
                        '(e.g. data/kvasir_sample to run on the bundled sample)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override config settings, key=value pairs (xxx=yyy format); a value may be '
        'dict(a=1, b=2), or write model.pskd.alpha_t=0.5')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log scalars for TensorBoard (WORK_DIR/<time>/vis_data)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--from-scratch', action='store_true',
        help='initialise every model randomly instead of from the ImageNet weights the '
        'config names (pretrained=True / init_cfg Pretrained); for machines without the '
        'weights, such as the demo on the bundled sample')


def add_tensorboard(cfg: Config) -> None:
    """Add mmengine's ``TensorboardVisBackend`` to the visualizer (``--tensorboard``): the
    scalars the runner logs (losses, lr, every model's metrics) become TensorBoard events in
    the run's ``vis_data`` folder, beside the local JSON."""
    visualizer = cfg.get('visualizer') or dict(type='Visualizer')
    backends = list(visualizer.get('vis_backends') or [dict(type='LocalVisBackend')])
    if not any(str(b.get('type')).endswith('TensorboardVisBackend') for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    cfg.visualizer = dict(visualizer, vis_backends=backends)


def load_run_config(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with the shared options applied: ``--cfg-options``,
    ``--data-root``, a top-level ``model=dict(base=...)`` expanded, mmkd types that lack the
    ``mmkd.`` prefix their scope needs named, ``--tensorboard``, ``NumClassesCheckHook``
    added, the launcher set up, and the work dir (``./work_dirs/<config name>`` by
    default)."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        set_data_root(cfg, args.data_root)
    if getattr(args, 'from_scratch', False):
        switched = from_scratch(cfg)
        print_log(f'--from-scratch: random initialisation instead of {switched or "nothing"}',
                  logger='current')
    resolve_model(cfg)
    check_mmkd_prefixes(cfg)  # a forgotten `mmkd.` named here, not as mmengine's KeyError
    if getattr(args, 'tensorboard', False):
        add_tensorboard(cfg)
    if not any(str(h.get('type')).split('.')[-1] == 'NumClassesCheckHook'
               for h in cfg.get('custom_hooks', [])):
        # models against their dataset's classes, before the first iteration; prefixed, so
        # that mmdet-scoped configs (exported students, drop-in configs) find it too
        cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='mmkd.NumClassesCheckHook')]
    from .run_checks import RunStartCheckHook  # noqa: F401 (registers it)
    if not any(str(h.get('type')).split('.')[-1] == 'RunStartCheckHook'
               for h in cfg.custom_hooks):
        # the checkpoint load_from / --resume brings, and the batch size, against the model
        # and the dataset as built
        cfg.custom_hooks = [*cfg.custom_hooks, dict(type='mmkd.RunStartCheckHook')]
    setup_launcher(cfg, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg

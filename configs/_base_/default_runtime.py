# mmdet's runtime in the mmkd scope: mmkd, mmdet and mmengine names resolve unprefixed.
_base_ = 'mmdet::_base_/default_runtime.py'

default_scope = 'mmkd'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# backend 'atomic_local' (registered by `import mmkd`) writes each checkpoint to a temporary
# file and renames it into place, so a run killed mid-save never leaves a truncated checkpoint
# (mmkd/checkpoint/atomic_local_backend.py). It writes to local paths only: for a remote work
# dir set default_hooks.checkpoint.backend_args to that storage's backend.
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                     backend_args=dict(backend='atomic_local')))
# Under DDP, mmengine's wrapper with the step of a distiller whose models each have their own
# optimiser (PerModelOptimWrapperConstructor); any other model steps as with mmengine's.
model_wrapper_cfg = dict(type='DistillerDistributedDataParallel')
# No fixed visualizer name: mmengine reuses an instance by name, so several runs in one
# process would otherwise all log into the first run's vis_data.
visualizer = dict(
    _delete_=True, type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')])

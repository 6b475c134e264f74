# mmdet's runtime in the mmkd scope: mmkd, mmdet and mmengine names resolve unprefixed.
_base_ = 'mmdet::_base_/default_runtime.py'

default_scope = 'mmkd'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))

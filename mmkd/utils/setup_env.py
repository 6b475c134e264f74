"""Explicit registration of every mmkd (and mmdet) module, for scripts and notebooks."""
from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmkd module so that its classes are registered.

    Args:
        init_default_scope (bool): Make ``mmkd`` the current default scope, so that mmkd,
            mmdet and mmengine names resolve unprefixed. Defaults to True.
    """
    from mmdet.utils import register_all_modules as register_mmdet
    register_mmdet(init_default_scope=False)
    import mmkd.datasets  # noqa: F401
    import mmkd.engine  # noqa: F401
    import mmkd.evaluation  # noqa: F401
    import mmkd.models  # noqa: F401
    import mmkd.visualization  # noqa: F401
    if init_default_scope and DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('mmkd', scope_name='mmkd')

import mmdet.visualization  # noqa: F401  (parent registries do not import)

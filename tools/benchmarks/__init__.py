"""The cases of tools/benchmark.py, one module each. A case module has ``NAME`` (its name
for ``--cases``) and ``run(args) -> list`` of rows, dicts with ``name``, ``value``, ``unit``,
``spread`` (``[min, max]`` over repetitions, or None), ``target``, ``met`` (None without a
target) and ``detail``; ``args`` are tools/benchmark.py's parsed options. What cases share
lives in common.py."""

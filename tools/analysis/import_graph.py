"""Which mmkd packages each mmkd package imports, read from the source with ``ast`` (nothing
is imported or run), as a markdown table; ``--check`` also lists the imports that break the
layering rule and exits 1 if there are any.

The rule: the library layers (``models``, ``datasets``, ``evaluation``, ``engine``,
``visualization`` and the top-level ``registry.py`` and ``scope_check.py``) never import
what the tools share (``utils``), nor ``checkpoint``, ``export`` or ``experiments``, which
are built on top of them. Every import counts: at module level, inside a function (a lazy
import) or under ``if TYPE_CHECKING``.

Usage: ``python tools/analysis/import_graph.py [--root mmkd] [--check]``.
"""
import argparse
import ast
import os
import os.path as osp
import sys
from typing import Dict, Iterator, List, Set, Tuple

PACKAGES = ('models', 'datasets', 'evaluation', 'engine', 'visualization', 'checkpoint',
            'export', 'experiments', 'utils', 'testing')
LIBRARY_PACKAGES = ('models', 'datasets', 'evaluation', 'engine', 'visualization')
LIBRARY_MODULES = ('registry', 'scope_check')
UPPER_PACKAGES = ('utils', 'experiments', 'export', 'checkpoint', 'testing')
DEFAULT_ROOT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'mmkd')


def source_files(root: str) -> Dict[str, str]:
    """Module name -> file of every ``.py`` file below ``root`` (a package folder; its
    folder name is the top-level package name)."""
    top, files = osp.basename(osp.normpath(root)), {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for name in sorted(n for n in names if n.endswith('.py')):
            path = osp.join(folder, name)
            parts = [top, *osp.relpath(path, root)[:-len('.py')].split(os.sep)]
            files['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return files


def _imports(path: str, module: str, known: Set[str]) -> Iterator[Tuple[int, str]]:
    """(line, imported module) for every import in ``path``, relative ones made absolute;
    ``from pkg import name`` counts as ``pkg.name`` where that is a module of ``known``."""
    is_package = osp.basename(path) == '__init__.py'
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = module.split('.')
                parts = parts[:len(parts) - node.level + (1 if is_package else 0)]
                base = '.'.join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f'{base}.{alias.name}'
                yield node.lineno, sub if sub in known else base


def group_of(module: str, top: str) -> str:
    """The package of ``module`` named in the table (``mmkd.models`` for
    ``mmkd.models.losses.kd_kl_div_loss``), or ``top`` for the top-level modules."""
    parts = module.split('.')
    if len(parts) > 1 and parts[1] in PACKAGES:
        return f'{top}.{parts[1]}'
    return top


def module_imports(root: str) -> Dict[str, List[Tuple[int, str]]]:
    """Module name -> (line, imported module) of its imports of the package at ``root``."""
    files = source_files(root)
    top, known = osp.basename(osp.normpath(root)), set(files)
    return {module: sorted({(line, target) for line, target in _imports(path, module, known)
                            if target == top or target.startswith(top + '.')})
            for module, path in files.items()}


def package_graph(root: str) -> Dict[str, Set[str]]:
    """Package -> the other packages of ``root`` it imports (every package of
    :data:`PACKAGES` present, and the top level, has a row)."""
    top = osp.basename(osp.normpath(root))
    graph = {group_of(module, top): set() for module in source_files(root)}
    for module, targets in module_imports(root).items():
        group = group_of(module, top)
        graph[group] |= {group_of(target, top) for _, target in targets} - {group}
    order = [top + '.' + p for p in PACKAGES] + [top]
    return {g: graph[g] for g in order if g in graph}


def layer_violations(root: str) -> List[str]:
    """``<module>:<line> imports <module>`` for every import of an upper package
    (:data:`UPPER_PACKAGES`) by a library module (:data:`LIBRARY_PACKAGES`,
    :data:`LIBRARY_MODULES`)."""
    top = osp.basename(osp.normpath(root))
    lower = {f'{top}.{p}' for p in LIBRARY_PACKAGES}
    lower_modules = {f'{top}.{m}' for m in LIBRARY_MODULES}
    upper = {f'{top}.{p}' for p in UPPER_PACKAGES}
    found = []
    for module, targets in sorted(module_imports(root).items()):
        if group_of(module, top) in lower or module in lower_modules:
            found += [f'{module}:{line} imports {target}' for line, target in targets
                      if group_of(target, top) in upper]
    return found


def markdown_table(graph: Dict[str, Set[str]]) -> str:
    rows = ['| package | imports (mmkd packages) |', '| --- | --- |']
    rows += [f'| {package} | {", ".join(sorted(targets)) or "—"} |'
             for package, targets in graph.items()]
    return '\n'.join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', default=DEFAULT_ROOT, help='the package folder')
    parser.add_argument('--check', action='store_true',
                        help='list the layering violations; exit 1 if there are any')
    args = parser.parse_args()
    print(markdown_table(package_graph(args.root)))
    if args.check:
        violations = layer_violations(args.root)
        print('\nlayering violations:' if violations else '\nno layering violations')
        print('\n'.join(violations))
        return 1 if violations else 0
    return 0


if __name__ == '__main__':
    sys.exit(main())

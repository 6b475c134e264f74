"""tools/analysis/import_graph.py: the library layers (models, datasets, evaluation, engine,
visualization, registry.py, scope_check.py) import nothing from utils, checkpoint, export or
experiments; and an upward import, relative, absolute or lazy, is reported."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis', 'import_graph.py')


@pytest.fixture(scope='module')
def graph():
    spec = importlib.util.spec_from_file_location('import_graph', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_package(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


@pytest.fixture
def tiny_mmkd(tmp_path):
    """A package ``mmkd`` with one upward import of each kind and allowed ones beside them."""
    return write_package(tmp_path / 'mmkd', {
        '__init__.py': 'from .utils import launch\n',
        'registry.py': 'import mmengine\n',
        'scope_check.py': ('from .registry import MODELS\n\n\n'
                           'def lazy():\n    from .utils import launch\n'),
        'version.py': 'from mmkd.utils import launch\n',  # not a library module: allowed
        'utils/__init__.py': '',
        'utils/launch.py': 'from mmkd.models import losses\n',
        'checkpoint/__init__.py': '',
        'models/__init__.py': 'from . import losses\nfrom .. import registry\n',
        'models/losses/__init__.py': '',
        'models/losses/bad_loss.py': 'from ...utils.launch import set_data_root\n',
        'models/losses/utils.py': 'from ..utils import x\n',  # mmkd.models.utils: allowed
        'models/utils/__init__.py': 'x = 1\n',
        'datasets/__init__.py': '\n\ndef lazy():\n    from mmkd.checkpoint import load\n',
        'evaluation/metric.py': 'from .. import utils\n',  # mmkd.utils
        'engine/hooks.py': 'from . import utils\n',  # a name of mmkd.engine, not a module
        'visualization/__init__.py': 'from mmkd import utils\n',
    })


def test_the_library_layers_import_no_tool_package(graph):
    assert graph.layer_violations(osp.join(REPO_ROOT, 'mmkd')) == []


def test_an_upward_import_of_each_kind_is_reported(graph, tiny_mmkd):
    assert graph.layer_violations(tiny_mmkd) == [
        'mmkd.datasets:4 imports mmkd.checkpoint',
        'mmkd.evaluation.metric:1 imports mmkd.utils',
        'mmkd.models.losses.bad_loss:1 imports mmkd.utils.launch',
        'mmkd.scope_check:5 imports mmkd.utils.launch',
        'mmkd.visualization:1 imports mmkd.utils',
    ]


def test_a_relative_import_from_a_parent_package_is_resolved(graph, tiny_mmkd):
    """``from . import utils`` in mmkd/engine/hooks.py is a name of mmkd.engine (there is no
    module mmkd.engine.utils): it counts as an import of mmkd.engine; ``from .. import
    utils`` in mmkd/evaluation/metric.py is the module mmkd.utils."""
    imports = graph.module_imports(tiny_mmkd)
    assert imports['mmkd.evaluation.metric'] == [(1, 'mmkd.utils')]
    assert imports['mmkd.engine.hooks'] == [(1, 'mmkd.engine')]
    assert imports['mmkd.models'] == [(1, 'mmkd.models.losses'), (2, 'mmkd.registry')]
    assert imports['mmkd.models.losses.utils'] == [(1, 'mmkd.models.utils')]


def test_the_table_lists_each_package_and_what_it_imports(graph, tiny_mmkd):
    table = graph.markdown_table(graph.package_graph(tiny_mmkd)).splitlines()
    assert table[2:] == [
        '| mmkd.models | mmkd, mmkd.utils |',
        '| mmkd.datasets | mmkd.checkpoint |',
        '| mmkd.evaluation | mmkd.utils |',
        '| mmkd.engine | — |',
        '| mmkd.visualization | mmkd.utils |',
        '| mmkd.checkpoint | — |',
        '| mmkd.utils | mmkd.models |',
        '| mmkd | mmkd.utils |',
    ]


def test_check_exits_1_naming_the_violation(tiny_mmkd):
    out = subprocess.run([sys.executable, TOOL, '--root', tiny_mmkd, '--check'],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert 'mmkd.models.losses.bad_loss:1 imports mmkd.utils.launch' in out.stdout

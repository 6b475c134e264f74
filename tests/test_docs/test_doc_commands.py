"""Every command block of README.md, docs/**/*.md and configs/*/README.md, tested as written.

Default suite (seconds): every ``tools/*.py`` command, usage lines included, names only
options its tool accepts; every repository path it reads exists; every ``make`` target exists
(``make -n``); the ``make demo`` commands of docs/get_started.md are the Makefile's; every
relative link resolves inside the repository. Bash lines that start with a bare ``python``
are the real-data recipes (an installed environment, the real dataset, ImageNet weights):
checked like the others, never run here.

``-m slow`` (``make test-docs``, minutes): every concrete command runs, block by block in
order, in a scratch folder that sees the repository's configs, data and tools (outputs go to
its own ``work_dirs/``), with the budget changes of :data:`BUDGET` applied; a non-zero exit
fails the test. Commands that cannot run here are listed in :data:`NOT_RUN` with the reason.
"""
import contextlib
import io
import os
import os.path as osp
import re
import runpy
import shlex
import subprocess
import sys
from typing import List, NamedTuple
from unittest import mock

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _markdown_files(folder: str) -> List[str]:
    return sorted(osp.relpath(osp.join(root, name), REPO)
                  for root, _, names in os.walk(osp.join(REPO, folder))
                  for name in names if name.endswith('.md'))


CONFIG_READMES = sorted(f'configs/{family}/README.md'
                        for family in os.listdir(osp.join(REPO, 'configs'))
                        if osp.isfile(osp.join(REPO, 'configs', family, 'README.md')))
DOCS = ['README.md'] + _markdown_files('docs') + CONFIG_READMES
SHELL_LANGS = ('bash', 'sh', 'shell', 'console')
PLACEHOLDER = re.compile(r'^\[|\]$|^[A-Z][A-Z0-9_]*(=|$)|\.\.\.|\||^<')

# Commands matched by a substring: what they need to fit a test's budget. `append` adds
# arguments at the end, `replace` swaps a word (a checkpoint the shorter run names otherwise).
BUDGET = {
    'tools/train.py configs/kvasir_kdml_v3.py': dict(append=[
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'custom_hooks.0.end=1']),
    'tools/test.py configs/kvasir_kdml_v3.py': dict(
        replace={'work_dirs/kvasir_demo/epoch_10.pth': 'work_dirs/kvasir_demo/epoch_1.pth'}),
}
# Commands that are not run, and why (each still gets the default suite's checks).
NOT_RUN = {
    'make demo': 'its two commands are the docs/get_started.md block beside it (checked equal), '
                 'run there',
    'make test': 'the test suite itself',
    'make reproduce': 'hours of training on Fashion-MNIST (the issue-18 tests run its parts)',
    'tools/reproduce_fashion_mnist.py --full': 'paper-scale recipes, for a GPU',
    '--parts cls --seeds 0 1 2 3 4': '30 trainings on Fashion-MNIST, make reproduce\'s cls part '
                                     '(tests/test_utils/test_reproduce_fashion_mnist.py)',
    'make before-after': '3 to 12 trainings of the main job (tests/test_utils/'
                         'test_kdml_before_after.py covers the stages and the report)',
    'make compare-detector-kd': '50 trainings on the multi-article Fashion-MNIST set '
                                '(tests/test_experiments/test_detector_kd_variants.py covers '
                                'the variants, runs and report)',
    'make compare-fashion-det': '30 trainings on the multi-article Fashion-MNIST set '
                                '(tests/test_utils/test_experiment.py and test_bad_input/'
                                "test_bad_compare.py cover compare_kdml's machinery)",
    '--variants alone kd kdml': '15 trainings each on the multi-article Fashion-MNIST set '
                                '(tests/test_utils/test_experiment.py covers --variants)',
    'make compare': "18 trainings of the main job (tests/test_bad_input/test_bad_compare.py "
                    "and test_utils/test_experiment.py cover compare_kdml's machinery)",
    'make bench': 'minutes of timing measurements',
    'setup_env.sh': 'installs the environment (the venv these tests run in)',
    'pip install': 'needs the internet and a CUDA machine',
    'gpu_check.sh': 'needs the GPU machine',
}
REAL_DATA_RECIPE = ('a real-data recipe (bare `python`): needs the real dataset and ImageNet '
                    'weights, which these machines do not have; its options and paths are checked')


class Command(NamedTuple):
    doc: str
    line: int
    block: int
    text: str

    @property
    def words(self) -> List[str]:
        return shlex.split(self.text, comments=True)

    @property
    def id(self) -> str:
        return f'{self.doc}:{self.line}'


def doc_commands(doc: str) -> List[Command]:
    """The shell commands of ``doc``'s fenced blocks: every line of a bash block
    (continuations joined, comments dropped), and the ``$ `` lines of an unlabelled block."""
    commands, lang, block, pending = [], None, 0, None
    with open(osp.join(REPO, doc)) as f:
        for number, line in enumerate(f, 1):
            stripped = line.rstrip('\n')
            fence = re.match(r'\s*```(\w*)', stripped)
            if fence:
                lang, block = (None, block) if lang is not None else (fence.group(1), block + 1)
                continue
            if lang is None or (lang not in SHELL_LANGS and lang != ''):
                continue
            if lang == '' and pending is None:
                if not stripped.startswith('$ '):
                    continue
                stripped = stripped[2:]
            if pending is None:
                pending = (number, '')
            text = pending[1] + ' ' + stripped.strip()
            if text.endswith('\\'):
                pending = (pending[0], text[:-1])
                continue
            if shlex.split(text, comments=True):
                commands.append(Command(doc, pending[0], block, text.strip()))
            pending = None
    return commands


ALL = [c for doc in DOCS for c in doc_commands(doc)]


def tool_of(words: List[str]):
    """``tools/<name>.py`` a command runs (the launch scripts run train.py / test.py)."""
    for word in words:
        if re.fullmatch(r'tools/\w+\.py', word):
            return word
        if word in ('tools/dist_train.sh', 'tools/dist_test.sh'):
            return word.replace('dist_', '').replace('.sh', '.py')
    return None


def is_usage(command: Command) -> bool:
    return any(PLACEHOLDER.search(w) for w in command.words)


def not_run_reason(command: Command):
    if command.words[0] == 'python':
        return REAL_DATA_RECIPE
    return next((why for key, why in NOT_RUN.items() if key in command.text), None)


_HELP = {}


def tool_help(tool: str) -> str:
    """``python tool --help``, run in this process (the tools parse arguments in main())."""
    if tool not in _HELP:
        out = io.StringIO()
        with mock.patch.object(sys, 'argv', [tool, '--help']), \
                contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            runpy.run_path(osp.join(REPO, tool), run_name='__main__')
        _HELP[tool] = out.getvalue()
    return _HELP[tool]


TOOL_COMMANDS = [c for c in ALL if tool_of(c.words)]


def test_the_docs_have_commands():
    assert len(ALL) > 20 and len(TOOL_COMMANDS) > 10, [c.text for c in ALL]


@pytest.mark.parametrize('command', TOOL_COMMANDS, ids=lambda c: c.id)
def test_options_are_the_tools_own(command):
    help_text = tool_help(tool_of(command.words))
    for word in command.words:
        option = re.match(r'\[?(--[\w-]+)', word)
        if option:
            assert re.search(rf'(^|[\s\[,]){re.escape(option.group(1))}\b', help_text), (
                f'{command.id}: {tool_of(command.words)} has no {option.group(1)}')


OUTPUT_OPTIONS = ('--out', '--out-dir', '--work-dir', '--show-dir')


@pytest.mark.parametrize('command', [c for c in ALL if not is_usage(c)], ids=lambda c: c.id)
def test_paths_it_reads_exist(command):
    for before, word in zip([''] + command.words, command.words):
        if before in OUTPUT_OPTIONS:
            continue  # written by the command (`make_fashion_det.py --out data/...`)
        path = word.split('=', 1)[-1]
        if re.match(r'(configs|data|tools|docs)/', path) and not re.search(r'[*{<]', path):
            assert osp.exists(osp.join(REPO, path)), f'{command.id}: {path} does not exist'


@pytest.mark.parametrize('command', [c for c in ALL if c.words[0] == 'make'], ids=lambda c: c.id)
def test_make_targets_exist(command):
    result = subprocess.run(['make', '-n', *command.words[1:]], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f'{command.id}: {result.stderr}'


def make_commands(target: str) -> List[List[str]]:
    out = subprocess.run(['make', '-n', target], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.replace('\\\n', ' ')
    commands = [shlex.split(line) for line in out.splitlines() if line.strip()]
    return [words for words in commands if words[0].endswith('python')]  # not `make env`


def test_documented_demo_commands_are_make_demos():
    # docs/get_started.md shows what `make demo` runs; the two drifted apart before (the KD/ML
    # ramp and the test's options were missing from the README, where they were then).
    shown = [c for c in ALL if c.doc == 'docs/get_started.md'
             and 'configs/kvasir_kdml_v3.py' in c.text and 'kvasir_demo' in c.text
             and c.words[0] != 'make']
    assert len(shown) == 2
    assert [sorted(c.words) for c in shown] == [sorted(w) for w in make_commands('demo')]


# Links known to be broken, with why; each must still be broken (remove it once fixed).
BROKEN_LINKS = {}


def is_external(target: str) -> bool:
    return bool(re.match(r'[a-z]+://|mailto:', target))


def link_targets(doc: str) -> List[str]:
    """Every link and image target of ``doc`` (``](target)``), anchors and titles dropped;
    in-page anchors (``](#x)``) are not returned."""
    with open(osp.join(REPO, doc)) as f:
        return re.findall(r'\]\(([^)#\s]+)', f.read())


def resolve(doc: str, target: str) -> str:
    """The absolute, normalised path a relative link of ``doc`` points at."""
    return osp.normpath(osp.join(REPO, osp.dirname(doc), target))


def test_relative_links_resolve_inside_the_repository():
    # The formula link used to point at ../shared/SPEC.md, outside the repository.
    for (doc, target), why in BROKEN_LINKS.items():
        assert not osp.exists(osp.join(REPO, osp.dirname(doc), target)), (
            f'{doc}: {target} exists now: remove it from BROKEN_LINKS')
    for doc in DOCS:
        for target in link_targets(doc):
            if is_external(target) or (doc, target) in BROKEN_LINKS:
                continue
            path = resolve(doc, target)
            assert path.startswith(REPO + os.sep), f'{doc}: link {target} leaves the repository'
            assert osp.exists(path), f'{doc}: link {target} does not resolve'


# ---------------------------------------------------------------- slow: run them
def runnable_blocks():
    blocks = {}
    for c in ALL:
        if not is_usage(c) and not not_run_reason(c):
            blocks.setdefault((c.doc, c.block), []).append(c)
    return list(blocks.values())


def with_budget(command: Command) -> List[str]:
    words = command.words
    for key, change in BUDGET.items():
        if key in command.text:
            words = [change.get('replace', {}).get(w, w) for w in words]
            words += change.get('append', [])
    return words


@pytest.fixture(scope='module')
def scratch(tmp_path_factory):
    """A folder that sees the repository's inputs; what the commands write stays here."""
    root = tmp_path_factory.mktemp('docs')
    for name in ('configs', 'data', 'tools', 'docs', '.venv', 'Makefile'):
        os.symlink(osp.join(REPO, name), root / name)
    return root


@pytest.mark.slow
@pytest.mark.parametrize('block', runnable_blocks(), ids=lambda b: b[0].id)
def test_block_runs_as_written(block, scratch):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for command in block:
        result = subprocess.run(with_budget(command), cwd=scratch, env=env,
                                capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, (
            f'{command.id}: {command.text}\nexit {result.returncode}\n'
            f'{result.stdout[-2000:]}\n{result.stderr[-4000:]}')


def test_every_command_is_run_or_says_why_not():
    # Usage lines are checked above; the rest either runs (slow) or is in NOT_RUN.
    ran = {c for block in runnable_blocks() for c in block}
    for c in ALL:
        assert c in ran or is_usage(c) or not_run_reason(c), c


def test_every_test_docs_faults_names_exists():
    # docs/user_guides/faults.md points each guarantee at a test: a renamed or deleted test
    # breaks this.
    with open(osp.join(REPO, 'docs', 'user_guides', 'faults.md')) as f:
        named = set(re.findall(r'\b(test_\w+)\b(?![./])', f.read()))  # not files, folders, keys
    defined = set()
    for folder, _, files in os.walk(osp.join(REPO, 'tests')):
        for name in files:
            if name.endswith('.py'):
                with open(osp.join(folder, name)) as f:
                    defined |= set(re.findall(r'def (test_\w+)', f.read()))
                defined.add(name[:-3])
    assert named and named <= defined, sorted(named - defined)

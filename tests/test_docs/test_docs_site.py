"""The documentation site (mkdocs.yml over docs/): every page is in the navigation and every
navigation entry exists; every relative link and image of README.md, the docs and the config
READMEs resolves, anchors included; nothing links outside the repository; pages under docs/
link only inside docs/ (what the built site serves); and, where mkdocs is installed (it is
not a requirement), ``mkdocs build --strict`` succeeds."""
import os
import os.path as osp
import re
import subprocess
import sys
import unicodedata
from typing import Iterator, List, Set

import pytest
import yaml
from test_doc_commands import DOCS, REPO, is_external, link_targets, resolve

DOCS_DIR = osp.join(REPO, 'docs')
# External links allowed in README.md and the docs ((doc, url): why). Paper and data-set URLs
# belong in configs/*/metafile.yml (data, not documentation links).
ALLOWED_EXTERNAL = {}


def nav_pages(nav) -> Iterator[str]:
    """Every page path of an mkdocs ``nav`` (nested lists of ``{title: page or list}``)."""
    for entry in nav:
        items = entry.values() if isinstance(entry, dict) else [entry]
        for item in items:
            if isinstance(item, list):
                yield from nav_pages(item)
            else:
                yield item


def load_mkdocs() -> dict:
    with open(osp.join(REPO, 'mkdocs.yml')) as f:
        return yaml.safe_load(f)


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = load_mkdocs()
    assert config['docs_dir'] == 'docs'
    nav = list(nav_pages(config['nav']))
    pages = {osp.relpath(osp.join(root, name), DOCS_DIR)
             for root, _, names in os.walk(DOCS_DIR) for name in names if name.endswith('.md')}
    assert len(nav) == len(set(nav)), 'a page is twice in the nav'
    assert not set(nav) - pages, f'nav entries without a page: {sorted(set(nav) - pages)}'
    assert not pages - set(nav), f'pages missing from the nav: {sorted(pages - set(nav))}'


def headings(path: str) -> List[str]:
    """The Markdown headings of ``path``, outside fenced code blocks."""
    found, fenced = [], False
    with open(path) as f:
        for line in f:
            if re.match(r'\s*```', line):
                fenced = not fenced
            elif not fenced and re.match(r'#{1,6} ', line):
                found.append(line.lstrip('#').strip())
    return found


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r'[^\w\- ]', '', heading.lower()).replace(' ', '-')


def mkdocs_slug(heading: str) -> str:
    """Python-Markdown's (mkdocs') default anchor: ASCII only, runs of spaces and hyphens
    become one hyphen."""
    text = unicodedata.normalize('NFKD', heading).encode('ascii', 'ignore').decode('ascii')
    return re.sub(r'[-\s]+', '-', re.sub(r'[^\w\s-]', '', text).strip().lower())


def anchors(path: str, slug) -> Set[str]:
    return {slug(h) for h in headings(path)}


def anchored_links(doc: str) -> Iterator[tuple]:
    with open(osp.join(REPO, doc)) as f:
        for target, anchor in re.findall(r'\]\(([^)#\s]*)#([^)\s]+)\)', f.read()):
            yield target, anchor


def test_every_anchor_resolves():
    # README.md and the config READMEs are read on GitHub; the pages under docs/ on GitHub
    # and on the built site, so their in-site anchors must hold for both slug rules.
    for doc in DOCS:
        for target, anchor in anchored_links(doc):
            if is_external(target):
                continue
            path = resolve(doc, target) if target else osp.join(REPO, doc)
            assert path.endswith('.md'), f'{doc}: anchor on a non-page link {target}#{anchor}'
            assert anchor in anchors(path, github_slug), (
                f'{doc}: {target}#{anchor}: no such heading (GitHub anchors: '
                f'{sorted(anchors(path, github_slug))})')
            if doc.startswith('docs/'):
                assert anchor in anchors(path, mkdocs_slug), (
                    f'{doc}: {target}#{anchor}: not an anchor of the built site')


def test_nothing_links_outside_the_repository():
    # Relative links that leave the repository fail in test_doc_commands; this covers URLs.
    for doc in DOCS:
        for target in link_targets(doc):
            if is_external(target):
                assert (doc, target) in ALLOWED_EXTERNAL, (
                    f'{doc}: links outside the repository: {target}')


@pytest.mark.parametrize('doc', [d for d in DOCS if d.startswith('docs/')])
def test_pages_link_only_inside_docs(doc):
    # The site holds docs/ only: a link from a page to configs/ or data/ would be dead there
    # (name such files as paths instead).
    for target in link_targets(doc):
        if not is_external(target):
            path = resolve(doc, target)
            assert path.startswith(DOCS_DIR + os.sep), f'{doc}: {target} leaves docs/'


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip('mkdocs', reason='mkdocs is not installed (not a requirement of mmkd)')
    result = subprocess.run(
        [sys.executable, '-m', 'mkdocs', 'build', '--strict', '--config-file',
         osp.join(REPO, 'mkdocs.yml'), '--site-dir', str(tmp_path / 'site')],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / 'site' / 'index.html').exists()

"""Rooms stay small: no source file of mmkd/ or tools/ over 400 lines, the median under 150
(issue 21's limits; split along the file's seams when one grows past them)."""
import glob
import os.path as osp
import statistics

from mmkd.experiments.seeded_runs import REPO_ROOT

MAX_LINES, MAX_MEDIAN = 400, 150


def line_counts():
    paths = sorted(glob.glob(osp.join(REPO_ROOT, 'mmkd', '**', '*.py'), recursive=True) +
                   glob.glob(osp.join(REPO_ROOT, 'tools', '**', '*.py'), recursive=True))
    counts = {}
    for path in paths:
        with open(path, encoding='utf-8') as f:
            counts[osp.relpath(path, REPO_ROOT)] = sum(1 for _ in f)
    return counts


def test_no_source_file_over_the_limit():
    counts = line_counts()
    assert len(counts) > 100
    too_long = {path: n for path, n in counts.items() if n > MAX_LINES}
    assert not too_long, f'over {MAX_LINES} lines, split along their seams: {too_long}'


def test_median_file_stays_small():
    assert statistics.median(line_counts().values()) < MAX_MEDIAN

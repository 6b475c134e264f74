"""``slow``: the documentation's commands run in full (minutes), only when asked for with
``-m slow`` (``make test-docs``); the default suite skips them, saying how to run them."""
import pytest


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: runs for minutes; run with pytest -m slow '
                            '(make test-docs)')


def pytest_collection_modifyitems(config, items):
    if 'slow' in (config.getoption('-m') or '') and 'not slow' not in config.getoption('-m'):
        return
    skip = pytest.mark.skip(reason='slow: run with make test-docs (pytest -m slow)')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip)

"""model-index.yml and every configs/<family>/metafile.yml in OpenMMLab's model-index form:
they load, carry the keys OpenMMLab's tools read, name configs that exist and collections
that are declared; every config family has its README.md and metafile.yml."""
import os
import os.path as osp
from numbers import Number

import pytest
import yaml

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FAMILIES = sorted(
    name for name in os.listdir(osp.join(REPO, 'configs'))
    if not name.startswith('_') and osp.isdir(osp.join(REPO, 'configs', name))
    and any(f.endswith('.py') for f in os.listdir(osp.join(REPO, 'configs', name))))


def load(path: str):
    with open(osp.join(REPO, path)) as f:
        return yaml.safe_load(f)


def metafiles():
    return load('model-index.yml')['Import']


def test_model_index_lists_every_family_metafile_once():
    listed = metafiles()
    assert len(listed) == len(set(listed))
    assert sorted(listed) == [f'configs/{family}/metafile.yml' for family in FAMILIES]


@pytest.mark.parametrize('family', FAMILIES)
def test_every_config_family_has_a_readme_and_a_metafile(family):
    for name in ('README.md', 'metafile.yml'):
        assert osp.isfile(osp.join(REPO, 'configs', family, name)), f'configs/{family}/{name}'


@pytest.mark.parametrize('metafile', metafiles())
def test_collections(metafile):
    collections = load(metafile)['Collections']
    assert collections and len({c['Name'] for c in collections}) == len(collections)
    for collection in collections:
        assert {'Name', 'Metadata', 'Paper', 'README'} <= set(collection), collection['Name']
        assert set(collection['Paper']) == {'Title', 'URL'}, collection['Name']
        assert collection['Paper']['URL'].startswith('https://'), collection['Name']
        assert osp.isfile(osp.join(REPO, collection['README'])), collection['README']


@pytest.mark.parametrize('metafile', metafiles())
def test_models(metafile):
    data = load(metafile)
    collections = {c['Name'] for c in data['Collections']}
    names = [m['Name'] for m in data['Models']]
    assert names and len(set(names)) == len(names), f'{metafile}: a model name twice'
    for model in data['Models']:
        name = model['Name']
        assert {'Name', 'In Collection', 'Config', 'Metadata', 'Results'} <= set(model), name
        assert model['In Collection'] in collections, f'{name}: {model["In Collection"]}'
        assert model['Config'].startswith('configs/'), f'{name}: {model["Config"]}'
        assert osp.isfile(osp.join(REPO, model['Config'])), f'{name}: {model["Config"]}'
        assert osp.splitext(osp.basename(model['Config']))[0] == name, name
        assert isinstance(model['Results'], list), name  # empty: not measured yet
        for result in model['Results']:
            assert set(result) == {'Task', 'Dataset', 'Metrics'}, name
            assert result['Metrics'] and all(
                isinstance(v, Number) for v in result['Metrics'].values()), name


def test_model_names_are_unique_across_metafiles():
    names = [m['Name'] for path in metafiles() for m in load(path)['Models']]
    assert len(names) == len(set(names))

from setuptools import find_packages, setup


def get_version():
    scope = {}
    with open('mmkd/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmkd',
    version=get_version(),
    description='Knowledge distillation for OpenMMLab: online teacher -> '
    'multi-student KD + mutual learning, and multi-exit self-distillation',
    packages=find_packages(include=['mmkd', 'mmkd.*']),
    python_requires='>=3.8',
    install_requires=[
        'mmengine>=0.10.7,<1.0', 'mmcv>=2.1.0,<2.2.0', 'mmdet>=3.3.0,<3.4.0',
        # tested: torch 2.1.2 (make test-torch21) and 2.9.1 (make test), docs/get_started.md
        'torch>=2.1'
    ],
    license='Apache License 2.0',
    zip_safe=False)

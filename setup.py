"""Packaging for beam-pipelines; also usable as Dataflow's ``--setup_file``."""

import pathlib
import re

import setuptools

HERE = pathlib.Path(__file__).resolve().parent
VERSION = re.search(
    r"^__version__ = '([^']+)'", (HERE / 'beam_pipelines' / '__init__.py').read_text(), re.M).group(1)

# Loose ranges; the exact, tested set is requirements/lock.txt (see README, "Dependencies").
# The base is what the word count and the harness need; the ML pipelines' libraries are the `ml`
# extra, so a word-count worker (Dataflow, Composer's Beam venv) never installs TensorFlow.
INSTALL_REQUIRES = [
    'apache-beam[gcp,dill,tfrecord]>=2.53,<3',
    'pyyaml>=6',
]
EXTRAS_REQUIRE = {
    'ml': ['tensorflow-data-validation>=1.16,<1.17', 'scikit-learn>=1.3'],
    'dev': ['pytest', 'invoke', 'build', 'setuptools', 'wheel', 'ruff', 'mypy'],
}

setuptools.setup(
    name='beam-pipelines',
    version=VERSION,
    description='Beam pipelines (word count, features, TFDV validation, training, inference) '
    'with a local build-test-deploy and continuous-training harness.',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=setuptools.find_packages(include=['beam_pipelines', 'beam_pipelines.*']),
    package_data={'beam_pipelines': ['py.typed', 'data/*', 'pipelines/*/*']},
    include_package_data=False,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    # build/ holds the build pipeline's own files: keep setuptools' scratch output out of it.
    options={'build': {'build_base': '.setuptools-build'}},
)

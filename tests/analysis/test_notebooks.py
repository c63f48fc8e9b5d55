"""Execute every notebook top to bottom on a synthesised runs root (kernel = this venv's python)."""
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.analysis.fakeruns import make_grid_N_with_checkpoints

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / 'notebooks').glob('*.ipynb'))
KERNEL = 'vit-adapter-test'


@pytest.fixture(scope='module')
def kernel_env(tmp_path_factory):
    """A kernelspec pointing at sys.executable, and a fake runs root, through the environment."""
    tmp = tmp_path_factory.mktemp('nb')
    kdir = tmp / 'jupyter' / 'kernels' / KERNEL
    kdir.mkdir(parents=True)
    (kdir / 'kernel.json').write_text(json.dumps({
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'venv', 'language': 'python'}))
    root = make_grid_N_with_checkpoints(tmp / 'runs')
    env = {'JUPYTER_PATH': str(tmp / 'jupyter'), 'RUNS_ROOT': str(root), 'GRID': 'N', 'PROFILE': 'tiny',
           'PYTHONPATH': str(REPO) + os.pathsep + os.environ.get('PYTHONPATH', ''), 'OMP_NUM_THREADS': '1'}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_notebooks_exist_and_are_generated():
    assert {p.name for p in NOTEBOOKS} == {'results.ipynb', 'fourier.ipynb'}
    sys.path.insert(0, str(REPO / 'notebooks'))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    for name, cells in make_notebooks.NOTEBOOKS.items():
        nb = nbformat.read(REPO / 'notebooks' / name, as_version=4)
        assert [c.source for c in nb.cells] == [c.source for c in cells], f'{name}: rerun notebooks/make_notebooks.py'


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, kernel_env):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name=KERNEL, timeout=180, resources={'metadata': {'path': str(REPO / 'notebooks')}}).execute()
    text = '\n'.join(o.get('text', '') + json.dumps(o.get('data', {})) for c in nb.cells if c.cell_type == 'code'
                     for o in c.get('outputs', []))
    assert 'N/N6/seed0: missing' in text  # the warnings are shown
    if path.name == 'results.ipynb':
        assert 'NOT a reproduction' in text and 'image/png' in text
    else:
        assert 'iter_40.pth' in text and 'image/png' in text  # trained checkpoints were used


def test_fourier_notebook_without_checkpoints(kernel_env, tmp_path, monkeypatch):
    monkeypatch.setenv('RUNS_ROOT', str(tmp_path))  # empty runs root: random tiny models, said so
    nb = nbformat.read(REPO / 'notebooks' / 'fourier.ipynb', as_version=4)
    NotebookClient(nb, kernel_name=KERNEL, timeout=180, resources={'metadata': {'path': str(tmp_path)}}).execute()
    text = '\n'.join(o.get('text', '') for c in nb.cells for o in c.get('outputs', []))
    assert 'RANDOM weights' in text

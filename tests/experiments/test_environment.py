"""The locked environment (requirements.lock, tools/lock.py) and the environment each manifest records."""
import importlib.util
import json
import subprocess
import sys

import pytest

from experiments import launch
from experiments import rundir as rd
from experiments.grids import get_grid

from .conftest import REPO

_spec = importlib.util.spec_from_file_location('lock_tool', REPO / 'tools' / 'lock.py')
lock_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock_tool)
WHEELHOUSE = REPO.parent / 'shared' / 'wheels'


def test_the_venv_holds_exactly_the_lock():
    """Every package pip freeze shows (minus the editable suite) is locked at the installed version, and the other
    way round; the lock is not older than the dependencies declared in pyproject.toml / requirements.txt."""
    lock = lock_tool.read_lock()
    installed = lock_tool.parse(lock_tool.freeze(sys.executable))
    assert lock_tool.compare(lock, installed) == []
    assert {'torch', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation', 'numpy', 'pandas', 'pycocotools', 'matplotlib',
            'tensorboard', 'setuptools'} <= set(lock)
    assert lock['torch'] == '2.13.0+cpu' and lock['mmcv'] == '2.1.0'
    assert 'vit-adapter-suite' not in lock and 'pip' not in lock
    assert lock_tool.lock_inputs_sha256() == lock_tool.inputs_sha256(), 'requirements.lock is stale: run `make lock`'
    # pyproject declares the run-time dependencies (what `make lock` resolves)
    declared = {lock_tool.norm(d.split('==')[0].split('>')[0].split('<')[0].split('[')[0].strip())
                for d in lock_tool.declared()}
    assert {'torch', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation', 'tensorboard', 'pycocotools'} <= declared


def test_lock_check_reports_drift(tmp_path):
    assert lock_tool.parse_line('mmcv @ file:///w/shared/wheels/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl#sha256=7') \
        == ('mmcv', '2.1.0')
    assert lock_tool.parse_line('Jinja2==3.1.6') == ('jinja2', '3.1.6')
    assert lock_tool.parse_line('-e git+file:///x@1#egg=vit_adapter_suite') is None
    problems = lock_tool.compare({'numpy': '2.4.6', 'jinja2': '3.1.6'}, {'numpy': '2.4.5', 'wandb': '1.0'})
    assert problems == ['jinja2==3.1.6 is in the lock but not installed', 'numpy: lock 2.4.6, installed 2.4.5',
                        'wandb==1.0 is installed but not in the lock']
    # the CUDA install brings torch, its CUDA packages and mmcv itself
    assert lock_tool.compare({'torch': '2.13.0+cpu'}, {'torch': '2.13.0+cu130', 'nvidia-cublas-cu13': '1'},
                             cuda=True) == []
    # `tools/lock.py check` fails (exit 1, no traceback) on a venv that differs from the lock
    lock = tmp_path / 'requirements.lock'
    lock.write_text((REPO / 'requirements.lock').read_text().replace('\nnumpy==', '\nnumpy==0.0.1+'))
    p = subprocess.run([sys.executable, str(REPO / 'tools' / 'lock.py'), 'check', '--lock', str(lock)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and 'numpy: lock 0.0.1+' in p.stderr and 'Traceback' not in p.stderr
    # a lock older than the declared dependencies is refused by `make install` (tools/install.sh runs `stale`)
    lock.write_text((REPO / 'requirements.lock').read_text().replace(lock_tool.inputs_sha256(), '0' * 64))
    p = subprocess.run([sys.executable, str(REPO / 'tools' / 'lock.py'), 'stale', '--lock', str(lock)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and 'make lock' in p.stderr


def test_lock_resolves_on_a_fresh_venv(tmp_path):
    """pip resolves the lock as a fresh venv would (--ignore-installed, dependencies included, nothing installed:
    --dry-run), and picks exactly the locked set: the lock is complete and consistent. Needs the package index
    (seconds with pip's cache)."""
    if not list(WHEELHOUSE.glob('mmcv-2.1.0-*.whl')):
        pytest.skip(f'no mmcv wheel in {WHEELHOUSE}: resolving would build mmcv from source')
    report = tmp_path / 'report.json'
    p = subprocess.run([sys.executable, '-m', 'pip', 'install', '--dry-run', '--ignore-installed', '-q',
                        '--find-links', str(WHEELHOUSE), '-r', str(REPO / 'requirements.lock'), '--report',
                        str(report)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    picked = {lock_tool.norm(i['metadata']['name']): i['metadata']['version']
              for i in json.loads(report.read_text())['install']}
    assert picked == lock_tool.read_lock()


def test_manifest_records_environment_outside_the_identity(tmp_path, synthetic_data, monkeypatch):
    import torch
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, status = launch.prepare_run(spec, 'tiny', tmp_path, {}, 'cmd', dry_run=False)
    m = json.loads((rdir / rd.MANIFEST).read_text())
    env = m['environment']
    freeze = lock_tool.parse(env['pip_freeze'])
    assert freeze['torch'] == torch.__version__ and freeze['mmcv'] == '2.1.0' and 'numpy' in freeze
    gpu = env['gpu']
    assert gpu['torch_cuda'] == (torch.version.cuda or 'none')
    assert set(gpu) >= {'torch_cuda', 'device', 'driver', 'device_count'}
    if not torch.cuda.is_available():
        assert gpu['device'] == 'none' and gpu['device_count'] == 0
    # another environment (a package upgraded, another GPU) is recorded, not compared: the run is the same
    monkeypatch.setattr(launch, '_environment', lambda: dict(env, pip_freeze=['numpy==0.0.1'],
                                                             gpu=dict(gpu, device='NVIDIA H200', driver='580.1')))
    rdir2, status = launch.prepare_run(spec, 'tiny', tmp_path, {}, 'cmd', dry_run=False)
    assert rdir2 == rdir and status == 'resume'
    assert json.loads((rdir / rd.MANIFEST).read_text())['identity'] == m['identity']

"""Code snapshots for SLURM jobs (experiments/snapshot.py), without SLURM; test_slurm.py submits real jobs."""
import json
import os
import subprocess
import sys

import pytest

from experiments import launch
from experiments import rundir as rd
from experiments import snapshot
from experiments.grids import get_grid

from .conftest import REPO


def _probe(snap, module):
    """snapshot.probe(module) in a fresh interpreter started as the batch script starts it (cd + PYTHONPATH)."""
    env = dict(os.environ, PYTHONPATH=str(snap))
    out = subprocess.run([sys.executable, '-c', f'import json; from experiments.snapshot import probe; '
                          f'print(json.dumps(probe({module!r})))'], cwd=snap, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_snapshot_holds_the_code_and_links_the_data(tmp_path):
    marker = REPO / 'experiments' / f'_snapshot_marker_{os.getpid()}.py'
    marker.write_text("VALUE = 'at snapshot'\n")  # a new, uncommitted file: part of the code (code_state hashes it)
    try:
        code = rd.code_state()
        snap = snapshot.take(tmp_path / '_snapshots', code=code)
        assert snap.name == code['code_sha256'][:16] and snapshot.read_mark(snap)['code'] == code
        assert (snap / 'experiments' / 'job.py').read_bytes() == (REPO / 'experiments' / 'job.py').read_bytes()
        assert (snap / 'experiments' / marker.name).is_file() and (snap / 'requirements.txt').is_file()
        assert not (snap / 'README.md').exists() and not (snap / 'tests').exists()  # code only (rundir.CODE_PATHS)
        for name in snapshot.LINKED:
            assert (snap / name).is_symlink() and os.readlink(snap / name) == str(REPO / name)
        assert snapshot.take(tmp_path / '_snapshots', code=code) == snap  # same code: reused
        marker.write_text("VALUE = 'changed after the snapshot'\n")
        seen = _probe(snap, f'experiments.{marker.stem}')
        # the snapshot's code, not the checkout's (nor the editable install's path to it)
        assert seen['value'] == 'at snapshot' and seen['file'] == str(snap / 'experiments' / marker.name)
        assert seen['code_root'] == str(snap) and seen['data'] == str((REPO / 'data').resolve())
        # the runs were prepared with other code than the checkout's now: refused, nothing made
        with pytest.raises(snapshot.SnapshotError, match='changed since the runs were prepared'):
            snapshot.take(tmp_path / '_other', code=code)
        assert not (tmp_path / '_other').exists() or not any((tmp_path / '_other').iterdir())
    finally:
        marker.unlink(missing_ok=True)


def _fake_slurm(tmp_path, monkeypatch):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    for name, body in (('sbatch', 'cat "$@" > "$(dirname "$0")/script.sh"; echo "Submitted batch job 4242"\n'),
                       ('srun', 'exit 0\n')):
        (bindir / name).write_text('#!/bin/bash\n' + body)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv('PATH', f'{bindir}:{os.environ["PATH"]}')
    return bindir


def test_slurm_submission_runs_from_a_snapshot(tmp_path, synthetic_data, monkeypatch):
    """The batch script submitit writes cds to the snapshot and imports from it (fake sbatch: the script is kept)."""
    bindir = _fake_slurm(tmp_path, monkeypatch)
    spec = get_grid('N').runs(1, only=['N2'])[0]
    root = tmp_path / 'runs'
    rdir, _ = launch.prepare_run(spec, 'tiny', root, {}, 'test', dry_run=False)
    args = launch.build_parser().parse_args(['N', '--cluster', 'slurm'])
    folder = root / 'tiny' / 'N' / '_submitit'
    launch.submit_submitit([rdir], 'slurm', folder, launch.cl.slurm_parameters(args, 'tiny'), max_num_timeout=1)
    code = json.loads((rdir / rd.MANIFEST).read_text())['code']
    snap = root.resolve() / 'tiny' / 'N' / snapshot.SNAPSHOTS / code['code_sha256'][:16]
    assert snapshot.read_mark(snap)['code'] == code
    script = (bindir / 'script.sh').read_text()
    assert f'cd {snap}\n' in script and f'export PYTHONPATH={snap}' in script
    assert script.index(f'cd {snap}') < script.index('submitit.core._submit')


def test_code_changed_after_prepare_is_not_submitted(tmp_path, synthetic_data, monkeypatch):
    bindir = _fake_slurm(tmp_path, monkeypatch)
    spec = get_grid('N').runs(1, only=['N2'])[0]
    root = tmp_path / 'runs'
    rdir, _ = launch.prepare_run(spec, 'tiny', root, {}, 'test', dry_run=False)
    marker = REPO / 'experiments' / f'_snapshot_marker_{os.getpid()}.py'
    marker.write_text("VALUE = 'after prepare'\n")
    try:
        args = launch.build_parser().parse_args(['N', '--cluster', 'slurm'])
        with pytest.raises(launch.SubmissionError, match='changed since the runs were prepared'):
            launch.submit_submitit([rdir], 'slurm', root / 'tiny' / 'N' / '_submitit',
                                   launch.cl.slurm_parameters(args, 'tiny'), max_num_timeout=1)
    finally:
        marker.unlink(missing_ok=True)
    state = rd.read_state(rdir)
    assert state['state'] == 'not submitted' and 'no code snapshot' in state['error']
    assert not (bindir / 'script.sh').exists()  # nothing reached sbatch

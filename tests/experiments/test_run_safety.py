"""A run is what its table says, and one process trains a run folder: identity, grid axes, locks, kills."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments import launch
from experiments import rundir as rd
from experiments.grids import get_grid

from .conftest import fast_options


def _run(*args, env=None):
    return subprocess.run([sys.executable, '-m', *args], cwd=rd.REPO_ROOT, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=300)


# --------------------------------------------------------------------------------------------- grid axes
def test_cfg_options_touching_a_grid_axis_are_refused(tmp_path):
    """Today `--cfg-options model.backbone.n_interactions=4` on grid N trains N=4 five times, reported as N=0..6."""
    p = _run('experiments.launch', 'N', '--dry-run', '--runs-root', str(tmp_path),
             '--cfg-options', 'model.backbone.n_interactions=4')
    assert p.returncode == 2 and 'Traceback' not in p.stderr, (p.stdout, p.stderr)
    assert "grid 'N' varies" in p.stderr and 'model.backbone.n_interactions' in p.stderr
    p = _run('experiments.launch', 'N', '--dry-run', '--runs-root', str(tmp_path), '--cfg-options', 'model.backbone=x')
    assert p.returncode == 2 and 'model.backbone' in p.stderr  # a parent of an axis key touches it too
    p = _run('experiments.launch', 'N', '--dry-run', '--runs-root', str(tmp_path), '--cfg-options',
             'train_cfg.max_iters=8')  # the same for every run: allowed
    assert p.returncode == 0, p.stderr
    # the 1x/3x schedules are an axis of main-det: its iterations cannot be overridden for every run
    axes = launch.grid_axes(get_grid('main-det'), 'tiny', tmp_path)
    assert 'train_cfg.max_iters' in axes and 'model.backbone.embed_dim' in axes
    with pytest.raises(launch.LaunchError, match='train_cfg.max_iters'):
        launch.check_cfg_options({'train_cfg.max_iters': 8}, axes, 'main-det')


# --------------------------------------------------------------------------------------------- identity
def test_identity_is_config_data_plus_code(tmp_path, synthetic_data):
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path / 'a', {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)
    man = json.loads((rdir / rd.MANIFEST).read_text())
    data = rd.read_config(rdir)
    assert man['identity'] == rd.identity(data, man['code']) and len(man['identity']) == 16
    assert man['code']['code_sha256'] == rd.code_state()['code_sha256']
    # the same run launched elsewhere has the same identity; other iterations or other code do not
    other, _ = launch.prepare_run(spec, 'tiny', tmp_path / 'b', {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)
    assert json.loads((other / rd.MANIFEST).read_text())['identity'] == man['identity']
    # the seeds of a run share its identity (the seed is what varies between them)
    seed2 = get_grid('N').runs([2], only=['N2'])[0]
    s2, _ = launch.prepare_run(seed2, 'tiny', tmp_path / 'a', {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)
    assert rd.read_config(s2)['randomness']['seed'] == 2
    assert json.loads((s2 / rd.MANIFEST).read_text())['identity'] == man['identity']
    # and is computed from the folder's data by today's rule
    assert rd.run_identity(man, data) == man['identity'] and rd.run_identity(dict(identity='x'), None) == 'x'
    longer = json.loads(json.dumps(data))
    longer['train_cfg']['max_iters'] = 400
    assert rd.identity(longer, man['code']) != man['identity']
    assert rd.identity(data, dict(man['code'], code_sha256='0' * 64)) != man['identity']
    # where it logs and how it is visualised is not what it computes
    vis = dict(data, visualizer=dict(type='Visualizer', vis_backends=[dict(type='TensorboardVisBackend')]),
               work_dir='/elsewhere')
    assert rd.identity(vis, man['code']) == man['identity']
    assert rd.config_hash(dict(reversed(list(data.items())))) == rd.config_hash(data)


def test_code_fingerprint_follows_code_files_only(tmp_path):
    """The code part of the identity: committed code trees + uncommitted changes to them; a README change is not
    a code change."""
    repo = tmp_path / 'repo'
    (repo / 'adapter').mkdir(parents=True)
    (repo / 'adapter' / 'm.py').write_text('x = 1\n')
    (repo / 'README.md').write_text('hello\n')
    git = ['git', '-c', 'user.email=t@t', '-c', 'user.name=t', '-C', str(repo)]
    subprocess.run(git[:-2] + ['init', '-q', str(repo)], check=True)
    subprocess.run(git + ['add', '-A'], check=True)
    subprocess.run(git + ['commit', '-qm', 'a'], check=True)
    clean = rd.code_state(repo)
    assert clean['dirty'] is False and clean['commit']
    (repo / 'README.md').write_text('changed\n')
    subprocess.run(git + ['commit', '-qam', 'readme'], check=True)
    assert rd.code_state(repo)['code_sha256'] == clean['code_sha256']  # new commit, same code
    (repo / 'adapter' / 'm.py').write_text('x = 2\n')
    dirty = rd.code_state(repo)
    assert dirty['dirty'] and dirty['code_sha256'] != clean['code_sha256']
    (repo / 'adapter' / 'm.py').write_text('x = 3\n')
    assert rd.code_state(repo)['code_sha256'] not in (clean['code_sha256'], dirty['code_sha256'])
    (repo / 'adapter' / 'm.py').write_text('x = 1\n')
    (repo / 'adapter' / 'new.py').write_text('y = 1\n')  # an untracked code file counts
    assert rd.code_state(repo)['dirty'] and rd.code_state(repo)['code_sha256'] != clean['code_sha256']


def test_resuming_with_other_code_is_refused(tmp_path, synthetic_data):
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)
    man = json.loads((rdir / rd.MANIFEST).read_text())
    man['code'] = dict(man['code'], code_sha256='f' * 64, commit='1234567890abcdef')
    (rdir / rd.MANIFEST).write_text(json.dumps(man))
    with pytest.raises(launch.LaunchError, match='two codes') as err:
        launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)
    assert 'git checkout 1234567890' in str(err.value)
    (rdir / rd.FINAL_METRICS).write_text('{"coco/bbox_mAP": 0.1}')  # a finished run is kept as it is
    assert launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)[1] == 'done'


# --------------------------------------------------------------------------------------------- locks
_HOLDER = """
import sys, time
from experiments import rundir as rd
lock = rd.RunLock(sys.argv[1], job_id='pid-test').acquire()
print('held', flush=True)
time.sleep(600)
"""


def test_lock_is_exclusive_and_a_killed_holder_leaves_it_stale(tmp_path):
    rdir = tmp_path / 'run'
    rdir.mkdir()
    rd.write_state(rdir, 'running', job_id='pid-test')
    proc = subprocess.Popen([sys.executable, '-c', _HOLDER, str(rdir)], cwd=rd.REPO_ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == 'held'
        holder, alive = rd.lock_holder(rdir)
        assert alive is True and holder['pid'] == proc.pid
        with pytest.raises(rd.RunLocked, match=f'pid {proc.pid}'):
            rd.RunLock(rdir).acquire()
        info = rd.read_run(rdir)
        assert info.state == 'running' and info.holder['pid'] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    holder, alive = rd.lock_holder(rdir)
    assert alive is False and holder['pid'] == proc.pid  # the file still names it; nobody holds it
    info = rd.read_run(rdir)
    assert info.state == 'interrupted' and f'pid {proc.pid}' in info.problems[-1]
    lock = rd.RunLock(rdir, job_id='again').acquire()  # a stale lock is taken over, and said so
    try:
        assert lock.took_over['pid'] == proc.pid and rd.lock_holder(rdir)[0]['job_id'] == 'again'
    finally:
        lock.release()
    assert rd.lock_holder(rdir) == (None, False)


def _run_processes(rdir):
    """PIDs of live processes started for ``rdir`` (the job and its DataLoader workers carry RUN_ENV)."""
    pids = []
    needle = f'{launch.RUN_ENV}={rdir}'.encode()
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            with open(f'/proc/{p}/environ', 'rb') as f:
                env = f.read().split(b'\0')
            with open(f'/proc/{p}/stat') as f:
                zombie = f.read().rsplit(')', 1)[1].split()[0] == 'Z'
        except OSError:
            continue
        if needle in env and not zombie:
            pids.append(int(p))
    return pids


def _start_job(rdir):
    env = dict(os.environ, **{launch.RUN_ENV: str(rdir)})
    env.update({k: v for k, v in launch.CPU_ENV.items() if k not in os.environ})
    return subprocess.Popen([sys.executable, '-m', 'experiments.job', str(rdir), '--config-sha256',
                             rd.config_sha256(rdir)], cwd=rd.REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(cond, timeout=120):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise TimeoutError('condition not reached')
        time.sleep(0.2)


def test_two_launches_of_one_run_train_it_once(tmp_path, synthetic_data, capsys):
    """A second job or launcher on a run being trained skips it and says who trains it; exactly one trains."""
    spec = get_grid('N').runs(1, only=['N2'])[0]
    opts = fast_options(iters=8, ckpt=4, val_images=8)
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, launch.parse_cfg_options(opts), 'cmd', dry_run=False)
    first = _start_job(rdir)
    try:
        _wait_for(lambda: rd.lock_holder(rdir)[1] or first.poll() is not None)
        assert first.poll() is None, first.stderr.read()
        second = _run('experiments.job', str(rdir))
        assert second.returncode == rd.LOCKED_EXIT and 'Traceback' not in second.stderr
        assert f'is being trained by pid {first.pid}' in second.stderr
        assert rd.read_state(rdir)['state'] == 'running'  # the second one touched nothing
        capsys.readouterr()
        rc = launch.main(['N', '--runs', 'N2', '--runs-root', str(tmp_path), '--cfg-options', *opts])
        out = capsys.readouterr()
        assert rc == 0 and f'being trained by pid {first.pid}' in out.err and 'skipped' in out.err
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert rd.read_run(rdir).state == 'finished'
    assert len([p for p in rdir.iterdir() if p.is_dir()]) == 1  # one mmengine start: trained once
    assert rd.lock_holder(rdir) == (None, False)


def test_ctrl_c_during_start_up_is_recorded_as_interrupted(tmp_path, synthetic_data):
    """A stop signal while the job imports, parses the config or builds the model is held until the train loop
    begins (raised inside an extension's import it aborted the process, or made Python exit by SIGINT instead of
    130), then stops the job as an interruption, not a failure."""
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, launch.parse_cfg_options(fast_options()), 'cmd',
                                 dry_run=False)
    job = _start_job(rdir)
    _wait_for(lambda: (rd.read_state(rdir) or {}).get('state') == 'running' or job.poll() is not None)
    job.send_signal(signal.SIGINT)
    rc = job.wait(timeout=120)
    st = rd.read_state(rdir)
    assert rc == 130 and st['state'] == 'interrupted' and 'stopped by SIGINT' in st['error'], (rc, st)
    err = job.stderr.read()
    assert 'Traceback' not in err and 'stops as soon as it has started up' in err, err[-3000:]
    assert rd.read_run(rdir).state == 'interrupted' and rd.lock_holder(rdir) == (None, False)


def test_a_stop_signal_is_held_during_start_up_and_a_second_one_is_not(monkeypatch, capsys):
    from experiments import job as job_mod
    monkeypatch.setattr(job_mod, 'STOP_SIGNAL', [])
    monkeypatch.setattr(job_mod, '_HOLD_STOP', [True])
    monkeypatch.setattr(job_mod, '_STOP_RAISED', [False])
    job_mod._stop(signal.SIGINT, None)  # held: returns
    assert job_mod.STOP_SIGNAL == ['SIGINT'] and 'send it again to stop now' in capsys.readouterr().err
    assert job_mod._STOP_RAISED == [False]  # an error now would be a failure of its own, not the stop
    with pytest.raises(KeyboardInterrupt, match='SIGTERM'):
        job_mod._stop(signal.SIGTERM, None)  # the second one stops at once (the first is the one recorded)
    assert job_mod.STOP_SIGNAL[0] == 'SIGINT' and job_mod._STOP_RAISED == [True]
    with pytest.raises(KeyboardInterrupt, match='received during start-up'):
        job_mod._release_stop_signals()  # the train loop begins: the held one stops the job
    assert job_mod._HOLD_STOP == [False]
    job_mod._release_stop_signals()  # once only
    monkeypatch.setattr(job_mod, 'STOP_SIGNAL', [])
    with pytest.raises(KeyboardInterrupt, match='signal SIGTERM'):
        job_mod._stop(signal.SIGTERM, None)  # after start-up: at once


def test_an_edited_config_py_is_reported_and_a_visualiser_switch_is_not(tmp_path, synthetic_data):
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)
    assert not any('edited' in p for p in rd.read_run(rdir).problems)
    cfg_py = rdir / rd.CONFIG
    cfg_py.write_text(cfg_py.read_text().replace('max_iters=8', 'max_iters=12'))  # edited by hand after launch
    assert any('edited' in p for p in rd.read_run(rdir).problems)
    assert launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)[1] == 'resume'
    assert 'max_iters=8' in cfg_py.read_text() and not any('edited' in p for p in rd.read_run(rdir).problems)
    before = cfg_py.read_text()
    assert launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 8}, 'cmd', dry_run=False,
                              vis=['none'])[1] == 'resume'  # another visualiser: the launcher rewrites config.py
    assert cfg_py.read_text() != before and not any('edited' in p for p in rd.read_run(rdir).problems)


def test_an_error_after_a_requeue_leaves_the_run_queued(tmp_path, synthetic_data, monkeypatch):
    """submitit's checkpoint() marks the run queued and requeues the job; a second USR2 then fails its own
    `scontrol requeue` (CalledProcessError) inside training. Seen on the local SLURM: the run read 'failed' until the
    requeued job started. It stays queued."""
    from experiments import job
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 8}, 'cmd', dry_run=False)

    def preempted(run_dir, cfg_bytes, distributed):
        job.TrainJob(str(run_dir)).checkpoint()  # what submitit calls on USR2: state queued, requeue
        raise subprocess.CalledProcessError(1, ['scontrol', 'requeue', '88'])
    monkeypatch.setattr(job, '_train', preempted)
    monkeypatch.setenv('SLURM_JOB_ID', '88')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(subprocess.CalledProcessError):
        job.train(rdir)
    st = rd.read_state(rdir)
    assert st['state'] == 'queued' and st['scheduler'] == 'slurm' and 'requeued' in st['note']

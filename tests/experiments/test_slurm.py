"""Integration tests against a real single-node SLURM (tools/slurm_local.sh), through submitit.

* requeue: a tiny run gets SLURM's preemption signal (USR2) mid-training; submitit calls TrainJob.checkpoint(),
  the job requeues itself, resumes from its last checkpoint and ends with the metrics and weights of an
  uninterrupted run submitted alongside it.
* distributed: one job as two SLURM tasks (torch.distributed gloo from the SLURM environment, as the multi-GPU
  path) matches the single-task job with the same global batch.
* snapshot: held jobs (a trivial probe and a tiny run) released after the checkout's code changed run the code
  snapshot taken at submission, and the run reads data/ through the snapshot's link.

As root the session fixture starts SLURM itself (and stops it at the end); a failure to start it fails the tests.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch

from experiments import launch
from experiments import rundir as rd
from experiments.compat import load_checkpoint_file
from experiments.grids import get_grid

from .conftest import REPO, fast_options

pytestmark = pytest.mark.slurm
SCRIPT = REPO / 'tools' / 'slurm_local.sh'
IGNORED = {'train_time_per_iter', 'train_wall_time_s', 'max_rss_mb', 'max_memory_mb'}


@pytest.fixture(scope='session')
def slurm():
    if os.geteuid() != 0:
        pytest.skip('starting a local SLURM needs root (tools/slurm_local.sh); run as root or in CI')
    env = dict(os.environ)
    # A SLURM already started by `make slurm-up` is reused (and left running); otherwise start one, stop it after.
    running = subprocess.run(['bash', str(SCRIPT), 'status'], capture_output=True, text=True, env=env,
                             timeout=60).returncode == 0
    if not running:
        proc = subprocess.run(['bash', str(SCRIPT), 'start'], capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f'could not start SLURM as root:\n{proc.stdout}\n{proc.stderr}')
    conf = str(Path(env.get('SLURM_LOCAL_DIR', '/tmp/vit-adapter-slurm')) / 'slurm.conf')
    old = os.environ.get('SLURM_CONF')
    os.environ['SLURM_CONF'] = conf
    yield conf
    if not running:
        subprocess.run(['bash', str(SCRIPT), 'stop'], capture_output=True, text=True, env=env, timeout=120)
    if old is None:
        os.environ.pop('SLURM_CONF', None)
    else:
        os.environ['SLURM_CONF'] = old


def _submit(root: Path, run: str, extra: dict, slurm_args: list[str]) -> Path:
    spec = get_grid('N').runs(1, only=[run])[0]
    rdir, status = launch.prepare_run(spec, 'tiny', root, extra, 'test', dry_run=False)
    args = launch.build_parser().parse_args(['N', '--cluster', 'slurm'] + slurm_args)
    params = launch.cl.slurm_parameters(args, 'tiny')
    launch.submit_submitit([rdir], 'slurm', root / '_submitit', params, max_num_timeout=3)
    return rdir


def _wait(pred, timeout: float, what: str, poll: float = 1.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f'timed out after {timeout:.0f} s waiting for {what}')


_GONE: dict = {}


def _done(rdir: Path):
    st = rd.read_state(rdir) or {}
    if st.get('state') == 'failed':
        raise AssertionError(f'{rdir} failed: {st.get("error")}\n{st.get("traceback", "")}')
    finished = rd.is_finished(rdir) and st.get('state') == 'finished'
    if not finished and st.get('job_id'):  # the job left SLURM without finishing: fail now, not at the timeout
        if launch.cl.squeue_states([st['job_id']]):
            _GONE.pop(str(rdir), None)
        elif time.time() - _GONE.setdefault(str(rdir), time.time()) > 30:
            raise AssertionError(f'SLURM job {st["job_id"]} of {rdir} is gone but the run did not finish: {st}')
    return finished


def _metrics(rdir):
    return {k: v for k, v in json.loads((rdir / rd.FINAL_METRICS).read_text()).items() if k not in IGNORED}


def _weights(rdir):
    return load_checkpoint_file(rd.last_checkpoint(rdir), map_location='cpu')['state_dict']


def test_preempted_job_requeues_resumes_and_matches(slurm, tmp_path, synthetic_data):
    extra = launch.parse_cfg_options(fast_options(iters=16, ckpt=4, val_images=8))
    slurm_args = ['--cpus-per-task', '1', '--time', '20']
    ref = _submit(tmp_path / 'ref', 'N2', extra, slurm_args)
    run = _submit(tmp_path / 'pre', 'N2', extra, slurm_args)
    job_id = rd.read_state(run)['job_id']
    # Preempt once the run has a checkpoint at iteration 4 (and before it has finished).
    ckpt = _wait(lambda: rd.last_checkpoint(run), 300, 'the first checkpoint', poll=0.5)
    assert not rd.is_finished(run), 'the run finished before it could be preempted; make it longer'
    subprocess.run(['scancel', '--signal=USR2', job_id], check=True)
    seen = []

    def requeued():
        st = rd.read_state(run) or {}
        seen.append(st.get('state'))
        if st.get('state') == 'queued':  # requeued; SLURM holds a requeued job back (BeginTime): skip that wait
            subprocess.run(['scontrol', 'update', f'JobId={job_id}', 'StartTime=now'], capture_output=True)
        return st.get('restarts', 0) >= 1
    _wait(requeued, 300, 'the requeued job to start', poll=0.5)
    # between the preemption and the restart the run reads as queued, never failed (submitit's second USR2 handler
    # fails its own `scontrol requeue`: that is not a failure of the run)
    assert 'queued' in seen and 'failed' not in seen, seen
    assert rd.read_run(run).state in ('running', 'finished')
    _wait(lambda: _done(run) and _done(ref), 600, 'both runs to finish')
    state = rd.read_state(run)
    assert state['restarts'] >= 1 and state['job_id'] == job_id  # same job, requeued by submitit
    logs = sorted(p for p in run.iterdir() if p.is_dir())
    assert len(logs) == 2, 'expected two mmengine starts (before and after the requeue)'
    second_log = next(logs[1].glob('*.log')).read_text()
    assert 'Advance dataloader' in second_log and 'resumed' in second_log.lower()
    assert ckpt.name.startswith('iter_')
    assert _metrics(run) == _metrics(ref)
    wr, wp = _weights(ref), _weights(run)
    assert all(torch.equal(wr[k], wp[k]) for k in wr)


def test_two_slurm_tasks_match_one(slurm, tmp_path, synthetic_data):
    # Same global batch (4 = 1 x 4 = 2 x 2); no randomness that differs per rank (no dropout, no random crop);
    # GroupNorm instead of BatchNorm so the statistics do not depend on the split. Segmentation: no RoI sampling.
    iters = 6
    base = launch.parse_cfg_options(fast_options(iters=iters, ckpt=iters, val_images=4))
    base.update({
        'model.backbone.norm': 'GN',
        'model.decode_head.norm_cfg': dict(type='GN', num_groups=8, requires_grad=True),
        'model.decode_head.dropout_ratio': 0.0,
        'train_dataloader.dataset.pipeline': [dict(type='LoadImageFromFile'),
                                              dict(type='LoadAnnotations', reduce_zero_label=True),
                                              dict(type='PackSegInputs')],
    })
    spec = get_grid('main-seg').runs(1, only=['semfpn_vit_adapter_T'])[0]
    dirs = {}
    for name, ntasks, batch in (('one', 1, 4), ('two', 2, 2)):
        extra = dict(base, **{'train_dataloader.batch_size': batch})
        rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path / name, extra, 'test', dry_run=False)
        args = launch.build_parser().parse_args(['main-seg', '--cluster', 'slurm', '--ntasks-per-node', str(ntasks),
                                                 '--cpus-per-task', '1', '--time', '20'])
        launch.submit_submitit([rdir], 'slurm', tmp_path / name / '_submitit', launch.cl.slurm_parameters(args, 'tiny'),
                               max_num_timeout=1)
        dirs[name] = rdir
        _wait(lambda: _done(rdir), 300, f'the {name}-task run')
    assert rd.read_state(dirs['one'])['world_size'] == 1
    assert rd.read_state(dirs['two'])['world_size'] == 2 and rd.read_state(dirs['two'])['backend'] == 'gloo'
    w1, w2 = _weights(dirs['one']), _weights(dirs['two'])
    w2 = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in w2.items()}
    assert w1.keys() == w2.keys()
    keys = [k for k in w1 if w1[k].is_floating_point()]
    diff = sum(((w1[k].double() - w2[k].double()) ** 2).sum() for k in keys).sqrt()
    rel = (diff / sum((w1[k].double() ** 2).sum() for k in keys).sqrt()).item()
    # Same math, different float summation order; Adam turns rounding noise on near-zero gradients into updates
    # of up to lr per step, so single weights may differ by ~1e-4 while the whole model agrees to ~1e-5..1e-4
    # (measured: 6e-5). Negative control: one task at batch 2 vs batch 4 -- what unaveraged ranks would give --
    # differs by 8e-3.
    assert rel < 1e-3, f'relative L2 difference of the weights {rel:.3g}'
    m1, m2 = _metrics(dirs['one']), _metrics(dirs['two'])
    assert abs(m1['mIoU'] - m2['mIoU']) < 1e-6 * 100 + 0.5  # percent; near-identical weights, same val set


def test_jobs_run_the_code_snapshot_taken_at_submission(slurm, tmp_path, synthetic_data):
    """Two held jobs -- a trivial probe and a tiny training run -- are submitted from one snapshot; then the
    checkout's code changes; released, both run the snapshot's code, and the run reads data/ through it."""
    from experiments import snapshot
    marker = REPO / 'experiments' / f'_slurm_marker_{os.getpid()}.py'
    marker.write_text("VALUE = 'submitted'\n")  # new uncommitted code: in the manifests' code and in the snapshot
    try:
        root = tmp_path / 'runs'
        spec = get_grid('N').runs(1, only=['N2'])[0]
        extra = launch.parse_cfg_options(fast_options(iters=2, ckpt=2, val_images=4))
        rdir, _ = launch.prepare_run(spec, 'tiny', root, extra, 'test', dry_run=False)
        args = launch.build_parser().parse_args(['N', '--cluster', 'slurm', '--cpus-per-task', '1', '--time', '20'])
        params = launch.cl.slurm_parameters(args, 'tiny')
        params['slurm_additional_parameters'] = {'hold': True}  # #SBATCH --hold: released below
        folder = root / 'tiny' / 'N' / '_submitit'
        [train_job] = launch.submit_submitit([rdir], 'slurm', folder, params, max_num_timeout=1)
        # the trivial job, through the same snapshot step (same code: the same snapshot)
        executor = launch.cl.make_executor('slurm', folder, launch._code_snapshot([rdir], folder.parent, params))
        probe_job = executor.submit(snapshot.probe, f'experiments.{marker.stem}')
        code = json.loads((rdir / rd.MANIFEST).read_text())['code']
        snap = root.resolve() / 'tiny' / 'N' / snapshot.SNAPSHOTS / code['code_sha256'][:16]
        assert snapshot.read_mark(snap)['code'] == code
        marker.write_text("VALUE = 'changed after submission'\n")  # the checkout moves on
        for job in (train_job, probe_job):
            subprocess.run(['scontrol', 'release', str(job.job_id).split('_')[0]], check=True)
        seen = probe_job.result()
        assert seen['value'] == 'submitted' and seen['file'] == str(snap / 'experiments' / marker.name)
        assert seen['cwd'] == str(snap) and seen['code_root'] == str(snap)
        assert seen['data'] == str((REPO / 'data').resolve())
        _wait(lambda: _done(rdir), 300, 'the tiny run')
        state = rd.read_state(rdir)
        assert state['code_root'] == str(snap) and state['gpu']['torch_cuda'] == (torch.version.cuda or 'none')
    finally:
        marker.unlink(missing_ok=True)

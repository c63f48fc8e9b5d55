"""End-to-end tiny training on CPU: same seed -> same metrics; an interrupted run resumes to the same result."""
import json
import os
import random
import signal
import time

import torch

from experiments import launch
from experiments import rundir as rd
from experiments.compat import allowed_names, load_checkpoint_file
from experiments.grids import get_grid

from .conftest import fast_options

IGNORED = {'train_time_per_iter', 'train_wall_time_s', 'max_rss_mb', 'max_memory_mb'}
ITERS, CKPT = 12, 4  # long enough that the signals of the last part land before the end (see there)
SEED_ENV = 'RESUME_TEST_SEED'  # replays the random signal times of a failed run (the seed is in its messages)


def _extra(**more):
    extra = launch.parse_cfg_options(fast_options(iters=ITERS, ckpt=CKPT, val_images=8))
    extra.update(more)
    return extra


def _train(root, extra):
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, status = launch.prepare_run(spec, 'tiny', root, extra, 'test', dry_run=False)
    results = launch._run_local([rdir])
    return rdir, results[0][1]


def _metrics(rdir):
    m = json.loads((rdir / rd.FINAL_METRICS).read_text())
    return {k: v for k, v in m.items() if k not in IGNORED}


def _weights(rdir):
    ckpt = load_checkpoint_file(rd.last_checkpoint(rdir), map_location='cpu')
    return ckpt['state_dict']


def test_same_seed_same_metrics_and_resume_matches(tmp_path, synthetic_data):
    a, rc = _train(tmp_path / 'a', _extra())
    assert rc == 0 and rd.read_state(a)['state'] == 'finished'
    b, rc = _train(tmp_path / 'b', _extra())
    assert rc == 0
    assert _metrics(a) == _metrics(b)  # same seed, same metrics, twice in a row
    assert _metrics(a)['coco/bbox_mAP'] >= 0 and _metrics(a)['iters'] == ITERS
    # the job records what analysis needs, so analysis never rebuilds or executes anything from the run
    full = json.loads((a / rd.FINAL_METRICS).read_text())
    assert full['params_m'] > 0 and full['train_wall_time_s'] > 0 and (full['max_memory_mb'] or full['max_rss_mb'])
    assert rd.read_config(a)['model']['backbone']['n_interactions'] == 2  # the data-only config.json
    # a real checkpoint holds only globals on the allow-list (they load weights-only)
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(str(rd.last_checkpoint(a)))) <= allowed_names()

    hooks = [dict(type='RNGStateHook'), dict(type='FinalMetricsHook'), dict(type='FaultInjectionHook', at_iter=6)]
    c, rc = _train(tmp_path / 'c', _extra(custom_hooks=hooks))
    assert rc != 0 and rd.read_state(c)['state'] == 'failed' and 'injected failure' in rd.read_state(c)['error']
    assert rd.last_checkpoint(c).name == 'iter_4.pth' and not rd.is_finished(c)
    c2, rc = _train(tmp_path / 'c', _extra(custom_hooks=hooks))  # relaunch: resumes from iter_4
    assert c2 == c and rc == 0 and rd.read_state(c)['state'] == 'finished'
    assert len([p for p in c.iterdir() if p.is_dir()]) == 2  # two mmengine starts (logs of both kept)
    assert _metrics(c) == _metrics(a)
    assert json.loads((c / rd.FINAL_METRICS).read_text())['train_wall_time_s'] > 0
    wa, wc = _weights(a), _weights(c)
    assert wa.keys() == wc.keys() and all(torch.equal(wa[k], wc[k]) for k in wa)

    # SIGKILL at a random point after the first checkpoint, then Ctrl-C at a random point of the relaunch, then a
    # relaunch to the end: the state says interrupted after each stop, nothing of the job is left running, and the
    # run ends with the metrics of the uninterrupted one. The waits are random fractions of times measured on this
    # machine, so that the run cannot finish before a signal: SIGKILL within 3 iterations (run a's seconds per
    # iteration) of the first checkpoint, so the relaunch resumes from iter_4 (not iter_8) and still has
    # 8 iterations and the evaluation to do; Ctrl-C within the time the first start took from 'running' to its
    # checkpoint (start-up and 4 iterations).
    from .test_run_safety import _run_processes, _start_job, _wait_for
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    print(f'{SEED_ENV}={seed}')
    rng = random.Random(seed)
    s_per_iter = json.loads((a / rd.FINAL_METRICS).read_text())['train_time_per_iter']
    spec = get_grid('N').runs(1, only=['N2'])[0]

    def started(job):  # the job runs the run (its SIGINT handler is installed)
        return ((rd.read_state(k) or {}).get('pid') != 0 and rd.read_state(k)['state'] == 'running'
                and rd.lock_holder(k)[1] or job.poll() is not None)

    k, _ = launch.prepare_run(spec, 'tiny', tmp_path / 'k', _extra(), 'test', dry_run=False)
    job = _start_job(k)
    _wait_for(lambda: started(job), timeout=300)
    t_started = time.monotonic()
    _wait_for(lambda: rd.last_checkpoint(k) is not None or job.poll() is not None, timeout=300)
    to_ckpt = time.monotonic() - t_started
    kill_after, int_after = rng.uniform(0, 3 * s_per_iter), rng.uniform(0, to_ckpt)
    why = (f'{SEED_ENV}={seed}: SIGKILL {kill_after:.2f} s after the first checkpoint ({s_per_iter:.2f} s/iter), '
           f'SIGINT {int_after:.2f} s after the relaunch started')
    time.sleep(kill_after)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not rd.is_finished(k), f'the run finished before SIGKILL; make it longer ({why})'
    assert rd.read_state(k)['state'] == 'running' and rd.read_run(k).state == 'interrupted', (rd.read_run(k), why)
    _wait_for(lambda: not _run_processes(k), timeout=30)  # DataLoader workers are gone too
    assert launch.prepare_run(spec, 'tiny', tmp_path / 'k', _extra(), 'test', dry_run=False)[1] == 'resume', why
    job = _start_job(k)
    _wait_for(lambda: started(job), timeout=300)
    time.sleep(int_after)
    job.send_signal(signal.SIGINT)
    err = job.communicate(timeout=120)[1]  # the job's stderr, for the message
    assert not rd.is_finished(k), f'the relaunched run finished before SIGINT; make it longer ({why})'
    rc, st = job.returncode, rd.read_state(k)
    assert rc == 130 and st['state'] == 'interrupted' and 'stopped by SIGINT' in st['error'], (rc, st, why, err[-3000:])
    assert rd.read_run(k).state == 'interrupted', why
    _wait_for(lambda: not _run_processes(k), timeout=30)
    _, rc = _train(tmp_path / 'k', _extra())
    assert rc == 0 and rd.read_run(k).state == 'finished'
    assert _metrics(k) == _metrics(a)

"""The training job: one run directory in, a trained model and ``final_metrics.json`` out.

``TrainJob(run_dir)`` is a ``submitit.helpers.Checkpointable``: on preemption or timeout submitit calls its
``checkpoint()``, which marks the run as queued again and resubmits the same job; the requeued job resumes from
the run's newest intact mmengine checkpoint (``experiments.rundir.resume_checkpoint``: a truncated or corrupt one
is skipped with a warning), and ``experiments.hooks.RNGStateHook`` makes the resumed run follow the uninterrupted
one exactly.

Distributed runs (several SLURM tasks) set up ``torch.distributed`` from the SLURM environment with
``submitit.helpers.TorchDistributedEnvironment`` (MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK), backend nccl
on GPU and gloo on CPU, and hand mmengine ``launcher='pytorch'``.

Also runnable without submitit: ``python -m experiments.job RUN_DIR`` (what ``--cluster local`` does).

What runs from the run directory: only ``config.py``, and only when its SHA-256 is the one the launcher computed
after checking the file against the config it resolves from ``experiments/configs`` (``--config-sha256``, kept
in ``TrainJob`` across requeues). Checkpoints load weights-only with the allow-list of ``experiments/compat.py``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path

import submitit
import torch

from experiments import rundir as rd


def _job_id() -> str | None:
    if 'SLURM_JOB_ID' in os.environ:
        array = os.environ.get('SLURM_ARRAY_JOB_ID')
        task = os.environ.get('SLURM_ARRAY_TASK_ID')
        return f'{array}_{task}' if array and task else os.environ['SLURM_JOB_ID']
    return os.environ.get('SUBMITIT_LOCAL_JOB_ID') or f'pid{os.getpid()}'


#: Names of the stop signals (SIGINT, SIGTERM) this job process received (``python -m experiments.job`` only).
STOP_SIGNAL: list[str] = []
#: True while the job starts up (imports, config, model, resume): a first stop signal is then held until the train
#: loop begins (``_release_stop_signals``). Raised at once, its KeyboardInterrupt can land inside the import of a
#: compiled extension (seen once: the process aborted, SIGABRT, the run left 'running'), or inside mmengine's
#: config parsing, after which Python ended the process by SIGINT whatever exit status the job chose (measured: 3 of
#: 6 relaunches stopped about 1 s into start-up; 0 of 8 with the hold). A second signal stops the job at once.
_HOLD_STOP = [False]
#: True once a stop signal has been raised as KeyboardInterrupt. Whatever error then ends the job is the stop (a
#: library may turn the KeyboardInterrupt into another error: mmengine's config parser re-raises it as SyntaxError);
#: an error while a signal is only held is a failure of its own.
_STOP_RAISED = [False]


def _stop(signum, frame):
    """The SIGINT / SIGTERM handler of ``python -m experiments.job`` (Ctrl-C, kill, the launcher stopping it)."""
    name = signal.Signals(signum).name
    STOP_SIGNAL.append(name)
    if _HOLD_STOP[0] and len(STOP_SIGNAL) == 1:
        print(f'{name}: the job stops as soon as it has started up (seconds); send it again to stop now',
              file=sys.stderr, flush=True)
        return
    _STOP_RAISED[0] = True
    raise KeyboardInterrupt(f'signal {name}')


def _release_stop_signals() -> None:
    """End of start-up: a stop signal held since then stops the job now (recorded as interrupted)."""
    if _HOLD_STOP[0]:
        _HOLD_STOP[0] = False
        if STOP_SIGNAL:
            _STOP_RAISED[0] = True
            raise KeyboardInterrupt(f'signal {STOP_SIGNAL[0]} (received during start-up)')


def _scheduler() -> str:
    return 'slurm' if 'SLURM_JOB_ID' in os.environ else 'local'


def setup_distributed() -> tuple[bool, int]:
    """Initialise torch.distributed from SLURM when the job has several tasks.

    Returns:
        (distributed, rank).
    """
    ntasks = int(os.environ.get('SLURM_NTASKS', '1'))
    if ntasks <= 1 or 'SLURM_JOB_ID' not in os.environ:
        return False, 0
    import torch.distributed as dist
    if dist.is_initialized():
        return True, dist.get_rank()
    env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend, init_method='env://', rank=env.rank, world_size=env.world_size)
    return True, env.rank


def _set_threads() -> None:
    cpus = os.environ.get('SLURM_CPUS_PER_TASK')
    if cpus and not torch.cuda.is_available():
        torch.set_num_threads(max(1, int(cpus)))


def train(run_dir: str | os.PathLike, config_sha256: str | None = None) -> dict:
    """Train (or resume) the run in ``run_dir`` and return its final metrics.

    Args:
        run_dir: The run directory.
        config_sha256: SHA-256 the launcher computed of the ``config.py`` it wrote or verified; when given, a
            ``config.py`` changed since then is not executed (requeued SLURM jobs included).

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.py`` (create runs with ``experiments.launch``).
        RuntimeError: ``config.py`` is not the file the launcher verified.
        experiments.rundir.RunLocked: another live process trains this run folder (nothing was touched).
    """
    run_dir = Path(run_dir).resolve()
    cfg_file = run_dir / rd.CONFIG
    if not cfg_file.is_file():
        raise FileNotFoundError(f'{cfg_file} missing: run directories are created by `python -m experiments.launch`')
    # One process per run folder: rank 0 holds the run's lock for as long as it works on the folder (RunLocked if a
    # live process holds it; then nothing is touched). The kernel drops the lock when the process dies, SIGKILL
    # included, so a killed run reads as 'interrupted' and a relaunch takes it over.
    rank0 = int(os.environ.get('SLURM_PROCID', os.environ.get('RANK', '0'))) == 0
    lock = rd.RunLock(run_dir, job_id=_job_id()).acquire() if rank0 else None
    try:
        if lock is not None and lock.took_over:
            print(f'note: took over the stale lock of {rd.describe_holder(lock.took_over)} (that process is gone)',
                  flush=True)
        return _locked_train(run_dir, cfg_file, config_sha256)
    finally:
        if lock is not None:
            lock.release()


def _locked_train(run_dir: Path, cfg_file: Path, config_sha256: str | None) -> dict:
    cfg_bytes = cfg_file.read_bytes()  # read once: the bytes checked are the bytes executed
    if config_sha256 is not None and hashlib.sha256(cfg_bytes).hexdigest() != config_sha256:
        msg = (f'{cfg_file} changed after the launcher verified it; it was not executed. Relaunch with '
               f'`python -m experiments.launch` (which checks it against the suite\'s config)')
        rd.write_state(run_dir, 'failed', error=f'RuntimeError: {msg}')
        raise RuntimeError(msg)
    os.chdir(rd.REPO_ROOT)  # configs name data/ and pretrained/ relative to the repository
    if str(rd.REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(rd.REPO_ROOT))
    _set_threads()
    distributed, rank = setup_distributed()
    if rd.is_finished(run_dir):
        return rd.read_json(run_dir / rd.FINAL_METRICS)
    if rank == 0:
        import socket
        world = int(os.environ.get('WORLD_SIZE', '1')) if distributed else 1
        from experiments.environment import gpu_info
        # code_root: where the job's code comes from (a SLURM job: the snapshot taken at submission); gpu: the
        # accelerator of the node that trains (the manifest has the launching host's).
        rd.write_state(run_dir, 'running', job_id=_job_id(), host=socket.gethostname(), world_size=world,
                       backend=('nccl' if torch.cuda.is_available() else 'gloo') if distributed else None,
                       restarts=int(os.environ.get('SLURM_RESTART_COUNT', '0')), scheduler=_scheduler(),
                       code_root=str(rd.REPO_ROOT), gpu=gpu_info())
    try:
        metrics = _train(run_dir, cfg_bytes, distributed)
    except BaseException as err:  # noqa: BLE001 - record every failure, then re-raise
        if rank == 0:
            old = rd.read_state(run_dir) or {}
            keep = {k: old[k] for k in _KEPT if k in old}
            if old.get('state') == 'queued':
                # submitit's checkpoint() wrote 'queued' and requeued the job: whatever ends this process now (a
                # SystemExit, or the second of two USR2 signals failing its own `scontrol requeue`) is not a failure;
                # the requeued job resumes the run
                pass
            elif isinstance(err, (KeyboardInterrupt, SystemExit)) or _STOP_RAISED[0]:
                # (a library may turn the KeyboardInterrupt of a stop signal into another error: mmengine's config
                # parser re-raises it as SyntaxError; the signal, not the exception, says the run was stopped)
                why = STOP_SIGNAL[0] if STOP_SIGNAL else type(err).__name__
                rd.write_state(run_dir, 'interrupted', error=f'stopped by {why}; a relaunch resumes it', **keep)
            else:
                rd.write_state(run_dir, 'failed', error=''.join(traceback.format_exception_only(type(err), err)).strip(),
                               traceback=traceback.format_exc()[-4000:], **keep)
        raise
    if rank == 0:
        old = rd.read_state(run_dir) or {}
        rd.write_state(run_dir, 'finished', **{k: old[k] for k in _KEPT if k in old})
    return metrics


#: What the state of a running job keeps when it ends (finished, failed, interrupted).
_KEPT = ('host', 'world_size', 'backend', 'restarts', 'scheduler', 'code_root', 'gpu')


def _die_with_parent(parent: int) -> None:
    """In a forked worker: ask Linux to SIGKILL this process when its parent (the job) dies, however it dies."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: PyTorch's own watchdog remains
        return
    if os.getppid() != parent:  # the job died before the call above
        os._exit(1)


def _workers_die_with_job() -> None:
    """DataLoader workers end when the job ends, SIGKILL included.

    A worker of a SIGKILLed job can block for good (measured: a persistent tiny-profile worker stayed alive with
    parent 1 after the job was killed), holding memory and a slot. mmengine seeds each worker through
    ``mmengine.runner.runner.default_worker_init_fn``; this wraps it (same arguments, same seeding) so each worker
    first asks for a parent-death signal.
    """
    import mmengine.runner.runner as mm_runner
    seed_worker = mm_runner.default_worker_init_fn
    if getattr(seed_worker, '_dies_with_job', False):
        return
    parent = os.getpid()

    def worker_init(*args, **kwargs):
        _die_with_parent(parent)
        return seed_worker(*args, **kwargs)
    worker_init._dies_with_job = True
    mm_runner.default_worker_init_fn = worker_init


def _startup_done_hook():
    """An mmengine hook whose ``before_train`` (after the model is built and a checkpoint resumed) ends start-up."""
    from mmengine.hooks import Hook

    class StartupDone(Hook):
        def before_train(self, runner) -> None:
            _release_stop_signals()
    return StartupDone()


def _train(run_dir: Path, cfg_bytes: bytes, distributed: bool) -> dict:
    from mmengine.config import Config
    from mmengine.runner import Runner

    from experiments.compat import patch_mmengine
    from experiments import hooks as _hooks  # noqa: F401 - registers the hooks
    from experiments import dist as _dist  # noqa: F401 - registers the CPU DDP wrapper

    patch_mmengine()  # checkpoints load weights-only with the allow-list of experiments/compat.py
    _workers_die_with_job()
    if torch.cuda.is_available():  # deterministic cuBLAS needs this before the first CUDA matmul
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    # Parse the checked bytes from a private copy: mmengine dumps the runtime config to work_dir/<basename>, so this
    # leaves the launcher's config.py as written (mmengine's dump goes to config_runtime.py, never executed).
    with tempfile.TemporaryDirectory() as tmp:
        frozen = Path(tmp) / 'config_runtime.py'
        frozen.write_bytes(cfg_bytes)
        cfg = Config.fromfile(str(frozen))
    cfg.work_dir = str(run_dir)
    resume_from = _resume_from(run_dir, distributed)  # the newest intact checkpoint; corrupt ones are skipped
    cfg.resume = resume_from is not None
    cfg.load_from = str(resume_from) if resume_from is not None else None  # resume + load_from: resume from it
    cfg.launcher = 'pytorch' if distributed else 'none'
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'nccl' if torch.cuda.is_available() else 'gloo'
    if distributed and not torch.cuda.is_available():
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel', broadcast_buffers=False,
                                     find_unused_parameters=cfg.get('find_unused_parameters', True))
    runner = Runner.from_cfg(cfg)
    runner.register_hook(_startup_done_hook(), priority='HIGHEST')
    if torch.cuda.is_available() and cfg.get('randomness', {}).get('deterministic'):
        # mmengine turns on torch.use_deterministic_algorithms(True); some CUDA backward ops (bilinear upsampling
        # in the seg heads) have no deterministic kernel and would raise. Keep determinism where it exists, warn
        # elsewhere (GPU runs are reproducible up to those ops; CPU runs are bitwise reproducible).
        torch.use_deterministic_algorithms(True, warn_only=True)
    runner.train()
    hook = next((h for h in runner.hooks if isinstance(h, _hooks.FinalMetricsHook)), None)
    if hook is None:
        raise RuntimeError('the config has no FinalMetricsHook in custom_hooks; add dict(type="FinalMetricsHook")')
    final = run_dir / rd.FINAL_METRICS
    if not hook.done:  # resumed after the last iteration, or val_interval did not hit max_iters (all ranks agree)
        runner.val()
        hook.write(runner)
    if distributed:
        import torch.distributed as dist
        dist.barrier()
    return rd.read_json(final)


def _resume_from(run_dir: Path, distributed: bool) -> Path | None:
    """``rundir.resume_checkpoint(run_dir)``, decided on rank 0 and shared with the other ranks (one check, one
    warning, and every rank resumes from the same file or raises)."""
    if not distributed:
        return rd.resume_checkpoint(run_dir)
    import torch.distributed as dist
    box = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ('ok', rd.resume_checkpoint(run_dir))
        except Exception as err:  # noqa: BLE001 - re-raised on every rank below
            box[0] = ('error', f'{type(err).__name__}: {err}')
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == 'error':
        raise RuntimeError(f'rank 0 could not choose a checkpoint to resume from: {value}')
    return value


class TrainJob(submitit.helpers.Checkpointable):
    """A submitit job training one run directory; requeues itself on preemption/timeout.

    Args:
        run_dir: The run directory (made by ``experiments.launch``).
    """

    def __init__(self, run_dir: str, config_sha256: str | None = None) -> None:
        self.run_dir = str(run_dir)
        self.config_sha256 = config_sha256

    def __call__(self) -> dict:
        return train(self.run_dir, getattr(self, 'config_sha256', None))

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        # mmengine has saved a checkpoint every `interval` iterations; the requeued job resumes from the last one.
        rd.write_state(Path(self.run_dir), 'queued', note='requeued after preemption/timeout; resumes from its newest '
                       f'intact checkpoint (last saved: {rd.last_checkpoint(Path(self.run_dir))})')
        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, getattr(self, 'config_sha256', None)))

    def __repr__(self) -> str:
        return f'TrainJob({self.run_dir!r})'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description='Train one run directory (made by experiments.launch).')
    parser.add_argument('run_dir')
    parser.add_argument('--config-sha256', default=None,
                        help='refuse to execute config.py unless it has this SHA-256 (the launcher passes it)')
    args = parser.parse_args(argv)

    _HOLD_STOP[0] = True  # until the train loop begins (the hook added in _train)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        metrics = train(args.run_dir, args.config_sha256)
    except rd.RunLocked as err:
        print(f'skipped: {err}', file=sys.stderr, flush=True)
        sys.exit(rd.LOCKED_EXIT)
    except BaseException as err:  # noqa: BLE001
        if not (isinstance(err, KeyboardInterrupt) or _STOP_RAISED[0]):
            raise
        print(f'interrupted ({STOP_SIGNAL[0] if STOP_SIGNAL else "Ctrl-C"}): {args.run_dir} is recorded as interrupted; '
              f'relaunch to resume it', file=sys.stderr, flush=True)
        sys.exit(130)
    print(f'final metrics of {args.run_dir}: {metrics}')


if __name__ == '__main__':
    main()

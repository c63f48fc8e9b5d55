"""mmengine hooks that make runs resumable bit for bit and leave a ``final_metrics.json`` behind.

* ``RNGStateHook`` stores the main process's torch / CUDA / numpy / python RNG states in every checkpoint and
  restores them right before the first iteration after a resume. mmengine's ``IterBasedTrainLoop`` replays the
  data iterator on resume (it skips the consumed batches), and with ``num_workers >= 1`` the augmentation RNG
  lives in the (re-seeded) workers, so data, augmentation and model randomness (RoI sampling, dropout, drop
  path) all match an uninterrupted run.
* ``FinalMetricsHook`` keeps the last validation metrics and the measured time per training iteration, and
  writes ``<work_dir>/final_metrics.json`` once training has reached ``max_iters`` and been evaluated: the
  metrics, ``iters``, ``params_m`` (#Param of the whole model, millions), ``train_time_per_iter``,
  ``train_wall_time_s`` (training wall time summed over the process starts, up to the checkpoint each resume
  started from), and the peak memory (``max_memory_mb`` on GPU, ``max_rss_mb`` on CPU; maxima over the starts).
  The analysis reads these numbers instead of rebuilding anything from the run's config.
* ``CheckpointRecordHook`` records the size and SHA-256 of every checkpoint mmengine's ``CheckpointHook`` saves
  into the work dir in ``<work_dir>/checkpoints.json`` (``experiments.rundir.record_checkpoints``), so that a
  relaunch can tell a truncated or corrupt checkpoint from an intact one (``experiments.rundir.resume_checkpoint``).

All are registered in mmengine's root ``HOOKS`` registry, which mmdet's and mmseg's registries fall back to.
"""
from __future__ import annotations

import json
import os
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

FINAL_METRICS = 'final_metrics.json'


def _rng_state() -> dict:
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module(force=True)
class RNGStateHook(Hook):
    """Checkpoint and restore the RNG states so a resumed run continues the uninterrupted random stream."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending = None

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        if getattr(loader, 'num_workers', 1) == 0:
            runner.logger.warning(
                'RNGStateHook: train_dataloader.num_workers == 0, so the augmentation RNG shares the main '
                'process and a resumed run will not replay augmentations exactly; use num_workers >= 1')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = _rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('rng_state')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is not None:
            _set_rng_state(self._pending)
            self._pending = None


@HOOKS.register_module(force=True)
class FinalMetricsHook(Hook):
    """Write ``final_metrics.json`` (last evaluation + ``train_time_per_iter`` + memory) at the end of training.

    Args:
        skip_first: Iterations per process start excluded from the timing (warm-up, worker start).
    """

    priority = 'LOW'

    def __init__(self, skip_first: int = 5) -> None:
        self.skip_first = skip_first
        self.metrics = None
        self.done = False  # the same on every rank (only the main process writes the file)
        self._t0 = None
        self._seen = 0
        self._time = 0.0
        self._timed = 0
        self._start = None
        self._wall_before = 0.0
        self._gpu_before = None
        self._rss_before = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['final_metrics_timing'] = dict(time=self._time, iters=self._timed, wall=self._wall(),
                                                  max_memory_mb=self._peak_gpu(), max_rss_mb=self._peak_rss())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        timing = checkpoint.get('final_metrics_timing')
        if timing:
            self._time, self._timed = timing['time'], timing['iters']
            self._wall_before = float(timing.get('wall') or 0.0)
            self._gpu_before = timing.get('max_memory_mb')
            self._rss_before = timing.get('max_rss_mb')

    def before_train(self, runner) -> None:
        self._start = time.perf_counter()

    def _wall(self) -> float:
        return self._wall_before + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def _peak_gpu(self):
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return max(torch.cuda.max_memory_allocated() / 2**20, self._gpu_before or 0.0)
        return self._gpu_before

    def _peak_rss(self) -> float:
        return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, self._rss_before or 0.0)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._t0 = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._seen += 1
        if self._t0 is not None and self._seen > self.skip_first:
            self._time += time.perf_counter() - self._t0
            self._timed += 1

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics = dict(metrics or {})
        self.metrics_iter = runner.iter

    def after_train(self, runner) -> None:
        max_iters = runner.train_loop.max_iters
        if runner.iter >= max_iters and self.metrics is not None and self.metrics_iter >= max_iters:
            self.write(runner)
            self.done = True

    def write(self, runner) -> dict:
        """Write the file now (also used by the launcher after a final ``runner.val()``)."""
        out = {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
               for k, v in (self.metrics or {}).items()}
        out['iters'] = int(runner.iter)
        out['train_time_per_iter'] = self._time / self._timed if self._timed else None
        out['train_wall_time_s'] = self._wall()
        model = getattr(runner.model, 'module', runner.model)  # unwrap DDP
        out['params_m'] = sum(p.numel() for p in model.parameters()) / 1e6
        out['max_memory_mb'] = self._peak_gpu()
        if out['max_memory_mb'] is None:
            out['max_rss_mb'] = self._peak_rss()
        if is_main_process():
            path = os.path.join(runner.work_dir, FINAL_METRICS)
            tmp = path + '.tmp'
            with open(tmp, 'w') as f:
                json.dump(out, f, indent=2, sort_keys=True)
            os.replace(tmp, path)
        return out


@HOOKS.register_module(force=True)
class CheckpointRecordHook(Hook):
    """Record size and SHA-256 of each checkpoint saved into the work dir in ``checkpoints.json``.

    ``before_save_checkpoint`` notes the ``*.pth`` files of the work dir (size, mtime); after the hook event in
    which mmengine saved (``after_train_iter``, ``after_train_epoch``, ``after_val_epoch``, ``after_train``; this
    hook has the lowest priority, so it runs after ``CheckpointHook`` has written the file, ``last_checkpoint`` and
    removed what ``max_keep_ckpts`` drops), every file that is new or changed is hashed and recorded, and records
    of removed files are dropped. Main process only (mmengine saves there).
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._before = None

    @staticmethod
    def _files(runner) -> dict:
        out = {}
        for path in Path(runner.work_dir).glob('*.pth'):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            out[path.name] = (st.st_size, st.st_mtime_ns)
        return out

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if is_main_process() and self._before is None:  # the first save of this hook event
            self._before = self._files(runner)

    def _record(self, runner) -> None:
        if self._before is None:
            return
        before, self._before = self._before, None
        from experiments import rundir
        changed = [Path(runner.work_dir) / name for name, st in self._files(runner).items() if before.get(name) != st]
        try:
            rundir.record_checkpoints(Path(runner.work_dir), changed)
        except OSError as err:  # the run goes on; a relaunch checks unrecorded checkpoints by loading them
            runner.logger.warning(f'CheckpointRecordHook: could not record {[p.name for p in changed]}: {err}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._record(runner)

    def after_train_epoch(self, runner) -> None:
        self._record(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._record(runner)

    def after_train(self, runner) -> None:
        self._record(runner)


@HOOKS.register_module(force=True)
class FaultInjectionHook(Hook):
    """Testing aid: make a run fail once, at iteration ``at_iter``, the way a crash or preemption would.

    Fires only the first time per work_dir (a marker file ``.fault_injected`` remembers it), so the relaunched job
    resumes from the last checkpoint and runs to the end.

    Args:
        at_iter: Iteration (1-based, after it finishes) at which to fail.
        action: 'raise' (a RuntimeError) or 'signal' (send ``signal`` to this process, e.g. submitit's USR2).
        signal: Signal name for ``action='signal'``.
    """

    def __init__(self, at_iter: int, action: str = 'raise', signal: str = 'SIGUSR2') -> None:
        if action not in ('raise', 'signal'):
            raise ValueError(f"action must be 'raise' or 'signal', got {action!r}")
        self.at_iter, self.action, self.signal = at_iter, action, signal

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        marker = os.path.join(runner.work_dir, '.fault_injected')
        if runner.iter + 1 != self.at_iter or os.path.exists(marker):
            return
        with open(marker, 'w') as f:
            f.write(f'iteration {self.at_iter}\n')
        if self.action == 'raise':
            raise RuntimeError(f'FaultInjectionHook: injected failure after iteration {self.at_iter}')
        import signal as _signal
        os.kill(os.getpid(), getattr(_signal, self.signal))

"""The local launcher's progress line for the run in progress: a rich progress bar on stderr (iteration / total, %,
ETA, s/iter, last loss and metric, read from the run's scalars log every few seconds) while the job's own output
keeps printing above it.

Only on a terminal: when stderr is not one (a log file, CI), nothing changes -- the job writes straight to the
launcher's stdout / stderr. On a terminal the job's stdout and stderr are piped through the launcher and printed
above the bar (stdout lines still go to stdout when that is a file), unbuffered (``PYTHONUNBUFFERED=1``).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from experiments import rundir as rd
from experiments import runlog as rl


def describe(p: rl.Progress) -> str:
    """``100/400 iters, ETA 2m 30s, 0.5 s/iter, loss 0.2, coco/bbox_mAP=0.31`` (unknown parts left out)."""
    parts = [f'{"-" if p.iter is None else p.iter}/{"?" if p.total is None else p.total} iters']
    if p.eta_s is not None:
        parts.append(f'ETA {rl.format_duration(p.eta_s)}')
    if p.s_per_iter is not None:
        parts.append(f'{p.s_per_iter:.3g} s/iter')
    if p.loss is not None:
        parts.append(f'loss {p.loss:.4g}')
    if p.metric is not None:
        parts.append(f'{p.metric[0]}={p.metric[1]:.4g}')
    return ', '.join(parts)


def read(rdir: Path) -> rl.Progress:
    """The progress of the run in ``rdir`` (its config.json gives the total)."""
    return rl.read_progress(rdir, rd.read_config(rdir))


class RunProgressBar:
    """Context manager around one job subprocess of the local launcher.

    Args:
        rdir: The run folder.
        label: Text before the bar (default: ``<run>/<seed>``).
        enabled: Show the bar (the launcher passes ``sys.stderr.isatty()``); when False everything is a no-op.
        console: A rich console (default: stderr's).
        interval: Seconds between reads of the log.
        redirect_stdout: Print the job's stdout above the bar too (default: when stdout is a terminal; otherwise
            it goes to stdout, e.g. a file, as it would without the bar).

    Use ``popen_kwargs()`` and ``child_env(env)`` for ``subprocess.Popen``, then ``follow(proc)``.
    """

    def __init__(self, rdir: Path, label: str | None = None, enabled: bool = True, console=None,
                 interval: float = 2.0, redirect_stdout: bool | None = None):
        self.rdir = Path(rdir)
        self.label = label or f'{self.rdir.parent.name}/{self.rdir.name}'
        self.enabled = enabled
        self.console = console
        self.interval = interval
        self.redirect_stdout = sys.stdout.isatty() if redirect_stdout is None else redirect_stdout
        self._progress = None
        self._task = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pumps: list[threading.Thread] = []

    # ------------------------------------------------------------------ subprocess plumbing
    def popen_kwargs(self) -> dict:
        return dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE) if self.enabled else {}

    def child_env(self, env: dict) -> dict:
        return dict(env, PYTHONUNBUFFERED='1') if self.enabled else env

    def follow(self, proc: subprocess.Popen) -> None:
        """Copy the job's output above the bar (one thread per stream) until it closes its pipes."""
        if not self.enabled:
            return
        for src, dst in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)):  # the bar's proxies, when on
            if src is not None:
                t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                t.start()
                self._pumps.append(t)

    @staticmethod
    def _pump(src, dst) -> None:
        for raw in iter(src.readline, b''):
            try:
                dst.write(raw.decode('utf-8', errors='replace'))
                dst.flush()
            except (OSError, ValueError):  # the terminal went away: keep draining so the job never blocks
                pass
        src.close()

    # ------------------------------------------------------------------ the bar
    def refresh(self) -> None:
        """Read the log once and update the bar."""
        if self._progress is None:
            return
        p = read(self.rdir)
        self._progress.update(self._task, total=p.total, completed=p.iter or 0, info=describe(p))
        self._progress.refresh()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a log being written while read; the next read catches up
                pass

    def __enter__(self) -> 'RunProgressBar':
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
        console = self.console or Console(stderr=True)
        self._progress = Progress(TextColumn('[bold]{task.description}'), BarColumn(), TaskProgressColumn(),
                                  TextColumn('{task.fields[info]}'), console=console, auto_refresh=False,
                                  redirect_stdout=self.redirect_stdout,
                                  redirect_stderr=True, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=None, info='starting')
        self.refresh()
        t = threading.Thread(target=self._loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        self._stop.set()
        for t in self._pumps + self._threads:
            t.join(timeout=10)
        try:
            self.refresh()
        finally:
            self._progress.stop()
            self._progress = None

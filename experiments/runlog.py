"""mmengine's scalars logs of one run folder (``<YYYYmmdd_HHMMSS>/vis_data/scalars.json``), read across resumes,
and the progress of a run they tell (iteration, seconds per iteration, last loss and metric).

The low-level reader of the logs lives here, below ``analysis/`` (``analysis.logs`` builds its dataframes on
:func:`merge_run_scalars`), so that ``experiments.status`` and the launcher can show progress without pandas.

Format (verified in mmengine 0.10.7: ``visualization/vis_backend.py::LocalVisBackend.add_scalars``,
``hooks/logger_hook.py``, ``runner/log_processor.py``): one JSON object per line, appended.

- training lines (``LoggerHook.after_train_iter``, ``step = runner.iter + 1``): ``lr``, the smoothed losses
  (``loss``, ``loss_cls``, ...), ``time`` (seconds per iteration, averaged over the logging window),
  ``data_time``, ``iter`` (always), ``memory`` (MB, CUDA only), ``epoch`` (epoch-based loops), ``step``.
- validation lines (``LoggerHook.after_val_epoch``): the metrics, ``data_time``, ``time``, ``step``; no ``iter``
  key. With iteration-based loops ``step`` is always 0, so a validation line is placed at the training iteration
  logged last before it (in file order, across starts); its logged step is kept as ``logged_step``.

Each start of a run (first start, every resume) writes a new timestamped folder; a resumed run logs some steps
again from its last checkpoint. The folders are read in start order and the last value per (mode, step, key) kept.
Only JSON is read; a truncated or corrupt line is skipped with a warning naming file and line.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

TIMESTAMP_DIR = re.compile(r'^\d{8}_\d{6}$')
#: Metrics shown as "the" metric of a run, in order of preference (mmdet fractions, mmseg percent).
HEADLINE_METRICS = ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU', 'aAcc')


def find_log_dirs(run_dir: str | Path) -> list[Path]:
    """The timestamped mmengine log folders of a run, in start order (their names sort by time)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and TIMESTAMP_DIR.match(p.name))


def read_scalars_file(path: str | Path, label: str = '') -> tuple[list[dict], list[str]]:
    """Parse one scalars.json file.

    Args:
        path: The file.
        label: Prefix for warnings (e.g. the run name).

    Returns:
        (records, warnings): the valid JSON objects with a numeric ``step``, in file order, and one
        warning per skipped line (truncated/corrupt JSON, not an object, no step).
    """
    records, warnings = [], []
    prefix = f'{label}: ' if label else ''
    with open(path, encoding='utf-8', errors='replace') as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as e:
                warnings.append(f'{prefix}{path}:{lineno}: corrupt or truncated line skipped ({e.msg}): '
                                f'{text[:80]!r}')
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get('step'), (int, float)):
                warnings.append(f'{prefix}{path}:{lineno}: line without a numeric "step" skipped: {text[:80]!r}')
                continue
            records.append(rec)
    return records, warnings


def record_mode(rec: dict) -> str:
    """'train' for a LoggerHook training line (it always carries ``iter``), else 'val'."""
    return 'train' if 'iter' in rec else 'val'


@dataclass
class RawScalars:
    """Merged scalars of one run as plain dicts: ``train[step] = {key: value}``, ``val[step] = {...}`` (``step``:
    the training iteration a validation line follows, see the module doc); the folders read, warnings, and the
    number of values replaced by a later start."""

    train: dict[int, dict[str, float]] = field(default_factory=dict)
    val: dict[int, dict[str, float]] = field(default_factory=dict)
    log_dirs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overlaps: int = 0
    #: ``time`` of the training lines in file order of the last start (the recent speed of the run)
    last_start_times: list[float] = field(default_factory=list)


def merge_run_scalars(run_dir: str | Path, label: str = '') -> RawScalars:
    """Read and merge every ``<timestamp>/vis_data/scalars.json`` of a run (numeric values only).

    Args:
        run_dir: The run's work_dir.
        label: Name used in warnings (default: the folder path).
    """
    label = label or str(run_dir)
    out = RawScalars()
    last_train_iter = None
    for d in find_log_dirs(run_dir):
        f = d / 'vis_data' / 'scalars.json'
        if not f.is_file():
            continue
        out.log_dirs.append(d)
        try:
            recs, w = read_scalars_file(f, label)
        except OSError as err:  # removed or unreadable while we look (a live run)
            out.warnings.append(f'{label}: {f}: not readable ({err})')
            continue
        out.warnings += w
        times = []
        for rec in recs:
            mode = record_mode(rec)
            step = int(rec['step'])
            if mode == 'train':
                last_train_iter = step
                if isinstance(rec.get('time'), (int, float)) and not isinstance(rec.get('time'), bool):
                    times.append(float(rec['time']))
            else:
                rec = dict(rec, logged_step=step)
                step = last_train_iter if last_train_iter is not None else step
            row = (out.train if mode == 'train' else out.val).setdefault(step, {})
            for k, v in rec.items():
                if k == 'step' or isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                if k in row:
                    out.overlaps += 1
                row[k] = float(v)
        if times:
            out.last_start_times = times
    return out


def headline_metric(metrics: dict | None) -> tuple[str, float] | None:
    """(name, value) of the metric a run is judged by (:data:`HEADLINE_METRICS`, else the first
    numeric ``<prefix>/<name>`` metric)."""
    if not metrics:
        return None
    for k in HEADLINE_METRICS:
        if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics.get(k), bool):
            return k, float(metrics[k])
    for k, v in metrics.items():  # an evaluator's metrics are named '<prefix>/<name>'
        if '/' in k and isinstance(v, (int, float)) and not isinstance(v, bool):
            return k, float(v)
    return None


def recent_seconds_per_iter(times: list[float], window: int = 5) -> float | None:
    """Median ``time`` of the last ``window`` training lines of the latest start; the first line of a start
    (warm-up: data workers, cudnn) is left out when later ones exist. None without any."""
    if len(times) > 1:
        times = times[1:]
    times = [t for t in times[-window:] if t > 0]
    return statistics.median(times) if times else None


@dataclass
class Progress:
    """Where a run stands according to its logs and config.

    Attributes:
        iter: Last logged training iteration (the checkpoint's iteration when nothing is logged).
        total: ``train_cfg.max_iters`` from the run's config.json (None: unknown, e.g. epoch-based or no config).
        s_per_iter: Recent seconds per iteration (:func:`recent_seconds_per_iter`).
        loss: Last logged ``loss``.
        metric: (name, value) of the final metrics, else of the last validation line.
        warnings: Problems reading the logs.
    """

    iter: int | None = None
    total: int | None = None
    s_per_iter: float | None = None
    loss: float | None = None
    metric: tuple[str, float] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float | None:
        """Done fraction in [0, 1], None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, (self.iter or 0) / self.total)

    @property
    def remaining_iters(self) -> int | None:
        return None if self.total is None else max(0, self.total - (self.iter or 0))

    @property
    def eta_s(self) -> float | None:
        """Seconds of training left: remaining iterations x recent seconds per iteration (None when unknown)."""
        if self.remaining_iters is None or self.s_per_iter is None:
            return None
        return self.remaining_iters * self.s_per_iter


def max_iters(config: dict | None) -> int | None:
    """``train_cfg.max_iters`` of a data-only config (config.json), None when absent (epoch-based loops)."""
    train_cfg = (config or {}).get('train_cfg')
    value = train_cfg.get('max_iters') if isinstance(train_cfg, dict) else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def read_progress(run_dir: str | Path, config: dict | None = None, final: dict | None = None,
                  checkpoint_iter: int | None = None) -> Progress:
    """The :class:`Progress` of the run in ``run_dir``.

    Args:
        config: The run's data-only config (``experiments.rundir.RunInfo.config``); gives the total.
        final: Its ``final_metrics.json`` (``RunInfo.final``), which wins over the logged metrics.
        checkpoint_iter: Iteration of its last checkpoint, used when no training line is logged.
    """
    raw = merge_run_scalars(run_dir)
    p = Progress(total=max_iters(config), warnings=raw.warnings)
    if raw.train:
        p.iter = max(raw.train)
        p.loss = raw.train[p.iter].get('loss')
    elif checkpoint_iter is not None:
        p.iter = checkpoint_iter
    iters = (final or {}).get('iters')
    if isinstance(iters, (int, float)) and not isinstance(iters, bool) and (p.iter is None or iters > p.iter):
        p.iter = int(iters)  # a finished run: the iterations it trained (the last line may be logged earlier)
    p.s_per_iter = recent_seconds_per_iter(raw.last_start_times)
    p.metric = headline_metric(final)
    if p.metric is None and raw.val:
        p.metric = headline_metric(raw.val[max(raw.val)])
    return p


def format_duration(seconds: float | None) -> str:
    """``1d 02h``, ``3h 05m``, ``4m 10s``, ``12s``; 'unknown' for None."""
    if seconds is None:
        return 'unknown'
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f'{d}d {h:02d}h'
    if h:
        return f'{h}h {m:02d}m'
    if m:
        return f'{m}m {s:02d}s'
    return f'{s}s'

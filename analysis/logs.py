"""Read mmengine's ``vis_data/scalars.json`` logs of one run, across resumes.

Format (verified in mmengine 0.10.7: ``visualization/vis_backend.py::LocalVisBackend.add_scalars``,
``hooks/logger_hook.py``, ``runner/log_processor.py``): one JSON object per line, appended.

- training lines (``LoggerHook.after_train_iter``, ``step = runner.iter + 1``): ``lr`` (and one
  ``<group>_lr`` per extra param group), the smoothed losses (``loss``, ``loss_cls``, ...), ``time``,
  ``data_time`` (with the IterTimerHook), ``iter`` (always: ``runner.iter + 1``), ``memory`` (MB, only
  when CUDA is available), ``epoch`` (epoch-based loops), ``step``.
- validation lines (``LoggerHook.after_val_epoch``): the metrics (``coco/bbox_mAP`` ... as fractions
  for mmdet, ``aAcc``/``mIoU``/``mAcc`` in percent for mmseg), ``data_time``, ``time``, ``step``; no
  ``iter`` key. With the default ``log_metric_by_epoch=True``, ``step`` is ``runner.epoch``: the epoch
  for epoch-based loops and **always 0** for iteration-based loops (seen in our tiny runs), and the
  iteration only with ``log_metric_by_epoch=False``. So a validation line is placed at the training
  iteration logged last before it (in file order, across starts; its own ``step`` when no training
  line came before), and its logged step is kept in the column ``logged_step``. Train and val lines are
  kept apart (their ``time`` keys would otherwise collide).

Each start of a run (first start, every resume) writes a new ``<YYYYmmdd_HHMMSS>/vis_data/`` folder.
A resumed run starts from its last checkpoint and logs some steps again; we read the folders in
start order and keep the last value per (mode, step, key).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

TIMESTAMP_DIR = re.compile(r'^\d{8}_\d{6}$')


@dataclass
class ScalarLog:
    """Merged scalars of one run.

    Attributes:
        train: Training lines, index ``step`` (iteration), one column per key.
        val: Validation lines, index ``step`` = the training iteration they follow (see module doc), raw
            metric keys plus ``logged_step`` (the step mmengine wrote).
        log_dirs: The timestamped folders read, in start order.
        warnings: Problems found (corrupt/truncated lines, ...), each naming file and line.
        overlaps: Number of (mode, step, key) values replaced by a later start.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    log_dirs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overlaps: int = 0

    @property
    def last_iter(self) -> int | None:
        """Last logged training iteration, or None without training lines."""
        return int(self.train.index.max()) if len(self.train) else None


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


def load_run_scalars(run_dir: str | Path, label: str = '') -> ScalarLog:
    """Read and merge every ``<timestamp>/vis_data/scalars.json`` of a run.

    Args:
        run_dir: The run's work_dir.
        label: Name used in warnings (default: the folder path).

    Returns:
        A :class:`ScalarLog`; non-numeric values are ignored (scalars only).
    """
    label = label or str(run_dir)
    merged: dict[str, dict[int, dict[str, float]]] = {'train': {}, 'val': {}}
    warnings: list[str] = []
    dirs = find_log_dirs(run_dir)
    used, overlaps = [], 0
    last_train_iter = None
    for d in dirs:
        f = d / 'vis_data' / 'scalars.json'
        if not f.is_file():
            continue
        used.append(d)
        recs, w = read_scalars_file(f, label)
        warnings += w
        for rec in recs:
            mode = record_mode(rec)
            step = int(rec['step'])
            if mode == 'train':
                last_train_iter = step
            else:
                rec = dict(rec, logged_step=step)
                step = last_train_iter if last_train_iter is not None else step
            row = merged[mode].setdefault(step, {})
            for k, v in rec.items():
                if k == 'step' or isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                if k in row:
                    overlaps += 1
                row[k] = float(v)

    def frame(d):
        if not d:
            return pd.DataFrame(index=pd.Index([], name='step', dtype='int64'))
        df = pd.DataFrame.from_dict(d, orient='index').sort_index()
        df.index.name = 'step'
        return df

    return ScalarLog(train=frame(merged['train']), val=frame(merged['val']), log_dirs=used,
                     warnings=warnings, overlaps=overlaps)


def mean_iter_time(train: pd.DataFrame, skip_first: int = 1) -> float:
    """Typical training time per iteration from the ``time`` column (s).

    The median over the logged lines, skipping the first ``skip_first`` lines (cudnn/compile warm-up).

    Args:
        train: :attr:`ScalarLog.train`.
        skip_first: Lines to skip when more than that many exist.
    """
    if 'time' not in train or not train['time'].notna().any():
        return math.nan
    t = train['time'].dropna()
    if len(t) > skip_first:
        t = t.iloc[skip_first:]
    return float(t.median())


def peak_memory_mb(train: pd.DataFrame) -> float:
    """Peak GPU memory (MB) over the logged ``memory`` values (NaN on CPU runs: mmengine logs none)."""
    if 'memory' not in train or not train['memory'].notna().any():
        return math.nan
    return float(train['memory'].max())

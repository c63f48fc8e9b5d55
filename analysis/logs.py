"""Read mmengine's ``vis_data/scalars.json`` logs of one run, across resumes, as dataframes (the line reader and
the merge across starts are :mod:`experiments.runlog`'s).

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

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# The reader itself lives in experiments (status and the launcher show progress from the same logs; analysis sits
# above experiments): re-exported here for analysis code and notebooks.
from experiments.runlog import (TIMESTAMP_DIR, find_log_dirs, merge_run_scalars, read_scalars_file,  # noqa: F401
                                record_mode)


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


def load_run_scalars(run_dir: str | Path, label: str = '') -> ScalarLog:
    """Read and merge every ``<timestamp>/vis_data/scalars.json`` of a run
    (:func:`experiments.runlog.merge_run_scalars`) into dataframes.

    Args:
        run_dir: The run's work_dir.
        label: Name used in warnings (default: the folder path).

    Returns:
        A :class:`ScalarLog`; non-numeric values are ignored (scalars only).
    """
    raw = merge_run_scalars(run_dir, label)

    def frame(d):
        if not d:
            return pd.DataFrame(index=pd.Index([], name='step', dtype='int64'))
        df = pd.DataFrame.from_dict(d, orient='index').sort_index()
        df.index.name = 'step'
        return df

    return ScalarLog(train=frame(raw.train), val=frame(raw.val), log_dirs=raw.log_dirs,
                     warnings=raw.warnings, overlaps=raw.overlaps)


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

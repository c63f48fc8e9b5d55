"""The run directory contract: ``$RUNS_ROOT/<profile>/<grid>/<run>/seed<k>/`` and the JSON files in it.

``manifest.json`` (what the run is; never rewritten), ``state.json`` (queued | running | finished | failed),
``config.py`` (the frozen mmengine config the job trains), ``config.json`` (a data-only copy of the same resolved
config: what analysis reads, since nothing under a runs root is ever executed outside the job),
``final_metrics.json`` (written by ``experiments.hooks.FinalMetricsHook``: metrics, #Param, iterations, wall
time, peak memory), plus mmengine's own timestamped log folders and checkpoints.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS_ROOT = REPO_ROOT / 'runs'
MANIFEST = 'manifest.json'
STATE = 'state.json'
CONFIG = 'config.py'
CONFIG_JSON = 'config.json'
FINAL_METRICS = 'final_metrics.json'
#: States written to ``state.json``. ``not submitted``: the SLURM submission failed (the error is recorded);
#: ``interrupted``: the job was stopped (Ctrl-C, SIGTERM) or died (SIGKILL, node loss) before finishing; a relaunch
#: resumes it from its last intact checkpoint.
STATES = ('not submitted', 'queued', 'running', 'interrupted', 'finished', 'failed')
#: Manifest fields that define the run; any difference means "a different experiment".
IDENTITY_KEYS = ('grid', 'run', 'seed', 'profile', 'task', 'overrides', 'config')


def run_dir(runs_root: str | os.PathLike, profile: str, grid: str, run: str, seed: int) -> Path:
    """``<runs_root>/<profile>/<grid>/<run>/seed<seed>`` as an absolute path."""
    return Path(runs_root).resolve() / profile / grid / run / f'seed{seed}'


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')


class CorruptRunFile(ValueError):
    """A run file (manifest, state, final metrics, config.json) that is not a readable JSON object."""


def write_json(path: Path, data: dict) -> None:
    """Crash-safe JSON write: a temporary file, flushed to disk (fsync), then renamed over ``path``; a reader
    sees the old file or the new one, never a truncated one."""
    path = Path(path)
    tmp = path.with_name(path.name + f'.tmp{os.getpid()}')
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(json.dumps(data, indent=2, sort_keys=True, default=str))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when the file does not exist; ``CorruptRunFile`` (naming the file and
    the fix) when it is not a readable JSON object (cut off by a crash, or edited)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode('utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptRunFile(f'{path} is corrupt ({err}); the file was cut off or edited. Restore it, or delete it '
                             f'to relaunch this run from its last checkpoint (delete the run folder to start over)') \
            from None
    if not isinstance(data, dict):
        raise CorruptRunFile(f'{path} is not a JSON object; restore it, or delete it to relaunch this run')
    return data


def json_data(obj):
    """``obj`` (e.g. ``Config.to_dict()``) as plain JSON data: dicts with str keys, lists, str/int/float/bool/None.

    Tuples become lists; anything else (a class, a function in a lazy-import config) becomes its ``repr`` string,
    so the copy can always be written and never holds code.
    """
    if isinstance(obj, dict):
        return {str(k): json_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_data(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def write_config_json(rdir: Path, cfg) -> Path:
    """Write ``config.json``: the data-only copy of the mmengine ``Config`` ``cfg`` (``cfg.to_dict()``)."""
    path = Path(rdir) / CONFIG_JSON
    write_json(path, json_data(cfg.to_dict()))
    return path


def config_sha256(rdir: Path) -> str:
    """SHA-256 of the run's ``config.py`` (the launcher hands it to the job, which checks it before executing)."""
    import hashlib
    return hashlib.sha256((Path(rdir) / CONFIG).read_bytes()).hexdigest()


def read_config(rdir: Path) -> dict | None:
    """The data-only config of a run (``config.json``), or None when the run predates it or the file is corrupt
    (the launcher then writes it again from the resolved config)."""
    try:
        data = read_json(Path(rdir) / CONFIG_JSON)
    except CorruptRunFile:
        return None
    return data if isinstance(data, dict) else None


def read_state(rdir: Path) -> dict | None:
    return read_json(Path(rdir) / STATE)


def write_state(rdir: Path, state: str, job_id: str | None = None, error: str | None = None, **extra) -> dict:
    """Write ``state.json``; ``job_id`` defaults to the previous one."""
    if state not in STATES:
        raise ValueError(f'state must be one of {STATES}, got {state!r}')
    try:
        old = read_state(rdir) or {}
    except CorruptRunFile:  # replaced by the state written now
        old = {}
    data = dict(state=state, job_id=job_id if job_id is not None else old.get('job_id'), updated=now(), error=error)
    data.update(extra)
    write_json(Path(rdir) / STATE, data)
    return data


def is_finished(rdir: Path) -> bool:
    return (Path(rdir) / FINAL_METRICS).is_file()


def last_checkpoint(rdir: Path) -> Path | None:
    """The checkpoint mmengine's ``last_checkpoint`` file points to, if it exists."""
    marker = Path(rdir) / 'last_checkpoint'
    if not marker.is_file():
        return None
    ckpt = Path(marker.read_text().strip())
    if not ckpt.is_absolute():
        ckpt = Path(rdir) / ckpt
    return ckpt if ckpt.is_file() else None


def manifest_mismatch(old: dict, new: dict) -> list[str]:
    """Identity fields that differ between two manifests."""
    return [k for k in IDENTITY_KEYS if old.get(k) != new.get(k)]

"""The run directory contract: ``$RUNS_ROOT/<profile>/<grid>/<run>/seed<k>/`` and the JSON files in it.

``manifest.json`` (what the run is; never rewritten), ``state.json`` (queued | running | finished | failed),
``config.py`` (the frozen mmengine config the job trains), ``config.json`` (a data-only copy of the same resolved
config: what analysis reads, since nothing under a runs root is ever executed outside the job),
``final_metrics.json`` (written by ``experiments.hooks.FinalMetricsHook``: metrics, #Param, iterations, wall
time, peak memory), ``checkpoints.json`` (size and SHA-256 of every checkpoint saved, written by
``experiments.hooks.CheckpointRecordHook``; :func:`resume_checkpoint` checks them before a resume), plus mmengine's
own timestamped log folders and checkpoints.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS_ROOT = REPO_ROOT / 'runs'
MANIFEST = 'manifest.json'
STATE = 'state.json'
CONFIG = 'config.py'
CONFIG_JSON = 'config.json'
FINAL_METRICS = 'final_metrics.json'
CHECKPOINTS = 'checkpoints.json'
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


# --------------------------------------------------------------------------------------------- checkpoints
class NoIntactCheckpoint(RuntimeError):
    """Every checkpoint of a run is truncated or corrupt: resuming would fail, starting over would lose them."""


#: mmengine's checkpoint names (``CheckpointHook.filename_tmpl`` defaults): the step is the number in the name.
_CKPT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def file_sha256(path: Path, chunk: int = 1 << 24) -> str:
    """SHA-256 of a file, read in chunks (checkpoints can be several GB)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_checkpoint_records(rdir: Path) -> dict[str, dict]:
    """The records in ``checkpoints.json``: file name (in the run directory) -> ``{size, sha256, recorded}``.

    Empty when the run has none (runs made before the record existed). Raises ``CorruptRunFile`` when the file is
    not readable JSON.
    """
    data = read_json(Path(rdir) / CHECKPOINTS) or {}
    records = data.get('checkpoints')
    return dict(records) if isinstance(records, dict) else {}


def record_checkpoints(rdir: Path, paths) -> dict[str, dict]:
    """Record size and SHA-256 of the checkpoint files ``paths`` (in ``rdir``) in ``checkpoints.json``.

    Records of files that no longer exist (removed by mmengine's ``max_keep_ckpts``) are dropped; an unreadable
    ``checkpoints.json`` is replaced. Returns the records written.
    """
    rdir = Path(rdir)
    try:
        records = read_checkpoint_records(rdir)
    except CorruptRunFile:
        records = {}
    for path in paths:
        path = Path(path)
        records[path.name] = dict(size=path.stat().st_size, sha256=file_sha256(path), recorded=now())
    records = {name: rec for name, rec in records.items() if (rdir / name).is_file()}
    write_json(rdir / CHECKPOINTS, dict(checkpoints=records))
    return records


def checkpoint_candidates(rdir: Path) -> list[Path]:
    """The run's checkpoints, newest first: ``iter_N.pth`` / ``epoch_N.pth`` by decreasing N; the file mmengine's
    ``last_checkpoint`` names comes first when it has another name."""
    rdir = Path(rdir)
    found = sorted(((int(m.group(1)), p) for p in rdir.iterdir() if p.is_file() and (m := _CKPT_NAME.match(p.name))),
                   key=lambda t: t[0], reverse=True)
    out = [p for _, p in found]
    marked = last_checkpoint(rdir)
    if marked is not None and marked.resolve() not in {p.resolve() for p in out}:
        out.insert(0, marked)
    return out


def _checkpoint_problem(path: Path, record: dict | None) -> str | None:
    """Why ``path`` can not be resumed from (size or SHA-256 differ from its record; without a record: it does not
    load weights-only), or None when it is intact. A checkpoint that needs globals outside the allow-list raises
    ``experiments.compat.UnsafeCheckpointError``: that is a refusal, not a fallback."""
    size = path.stat().st_size
    if record is not None:
        if size != record.get('size'):
            return f'{size} bytes, {record.get("size")} when it was saved (truncated or overwritten)'
        if file_sha256(path) != record.get('sha256'):
            return 'its SHA-256 differs from the one recorded when it was saved (corrupt)'
        return None
    from experiments.compat import CorruptCheckpointError, load_checkpoint_file  # torch only where needed
    try:
        load_checkpoint_file(path, map_location='cpu')
    except CorruptCheckpointError as err:
        return f'no record in {CHECKPOINTS} and it does not load ({err})'
    return None


def resume_checkpoint(rdir: Path, warn=None) -> Path | None:
    """The checkpoint a relaunched run resumes from: the newest intact one (see :func:`checkpoint_candidates`).

    A checkpoint is intact when its size and SHA-256 match its record in ``checkpoints.json``; one without a record
    (saved before the record existed, or cut off before it was recorded) when it loads weights-only. Each truncated
    or corrupt checkpoint is skipped with a warning naming it (``warn``, default: printed to stderr), and the next
    older one is tried.

    Returns:
        The checkpoint, or None when the run has no checkpoint (it starts from the beginning).

    Raises:
        NoIntactCheckpoint: the run has checkpoints but none is intact (the message names them and the fix).
        experiments.compat.UnsafeCheckpointError: a checkpoint needs globals outside the allow-list.
    """
    rdir = Path(rdir)
    if warn is None:
        def warn(msg):
            print(f'warning: {msg}', file=sys.stderr, flush=True)
    candidates = checkpoint_candidates(rdir)
    if not candidates:
        return None
    try:
        records = read_checkpoint_records(rdir)
    except CorruptRunFile as err:
        warn(f'{err}; every checkpoint is checked by loading it instead')
        records = {}
    bad = []
    for path in candidates:
        try:
            problem = _checkpoint_problem(path, records.get(path.name))
        except FileNotFoundError:  # removed meanwhile
            continue
        if problem is None:
            return path
        bad.append(f'{path} ({problem})')
        warn(f'checkpoint {path} skipped: {problem}')
    if not bad:
        return None
    raise NoIntactCheckpoint(
        f'{rdir} has no intact checkpoint to resume from: ' + '; '.join(bad) + '. Restore them, or delete '
        f'{", ".join(str(p) for p in candidates)} (and {rdir / "last_checkpoint"}) to train this run again from the '
        f'start')

"""The run directory contract, owned here: ``$RUNS_ROOT/<profile>/<grid>/<run>/seed<k>/``, its files and states.

Launch, the job, status and analysis all read and write run folders through this module.

Files: ``manifest.json`` (what the run is: grid, run, seed, overrides, the config text, ``config_hash`` and
``code``, and ``identity``, the hash of both; never rewritten), ``state.json`` (one of :data:`STATES`, job id,
error), ``config.py`` (the frozen mmengine config the job trains, executed only by the job and only with the
SHA-256 the launcher verified; ``config.py.sha256`` records what the launcher last wrote, so an edit is
detected), ``config.json`` (a data-only copy of the same resolved config: what analysis
reads, since nothing under a runs root is ever executed outside the job), ``run.lock`` (host/pid/job of the process
training the run, which also holds a POSIX lock on it), ``final_metrics.json`` (written by
``experiments.hooks.FinalMetricsHook``: metrics, #Param, iterations, wall time, peak memory), ``checkpoints.json``
(size and SHA-256 of every checkpoint saved, written by ``experiments.hooks.CheckpointRecordHook``;
:func:`resume_checkpoint` checks them before a resume), plus mmengine's own timestamped log folders and
checkpoints.

Reading: :func:`read_run` (one folder, its state checked against the lock and SLURM) and :func:`grid_folders`
(every folder of a grid, from ``experiments.grids``); mmengine's scalars logs in a run folder (progress, speed, last
loss and metric) are read by ``experiments.runlog``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
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


def flatten(data: dict | None, prefix: str = '') -> dict:
    """Nested config data as ``{'a.b.c': leaf}``: dicts are opened (an empty one is a leaf), lists are leaves."""
    out = {}
    for k, v in (data or {}).items():
        key = f'{prefix}{k}'
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + '.'))
        else:
            out[key] = v
    return out


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


#: SHA-256 of the ``config.py`` the launcher last wrote (a relaunch may rewrite it, e.g. another visualiser).
CONFIG_SHA = 'config.py.sha256'


def write_config_py(rdir: Path, text: str) -> None:
    """Write the run's ``config.py`` and the SHA-256 of what was written (``config.py.sha256``), so an edit made
    after the launcher wrote it is detected."""
    import hashlib
    (Path(rdir) / CONFIG).write_text(text)
    (Path(rdir) / CONFIG_SHA).write_text(hashlib.sha256(text.encode()).hexdigest() + '\n')


def config_edited(rdir: Path, manifest: dict | None) -> bool:
    """Whether ``config.py`` differs from what the launcher last wrote (its recorded SHA-256; for runs without the
    record, the config text in the manifest)."""
    import hashlib
    cfg_py = Path(rdir) / CONFIG
    if not cfg_py.is_file():
        return False
    record = Path(rdir) / CONFIG_SHA
    if record.is_file():
        return hashlib.sha256(cfg_py.read_bytes()).hexdigest() != record.read_text().strip()
    text = (manifest or {}).get('config')
    return text is not None and cfg_py.read_text(errors='replace') != text


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
    if old.get('scheduler') is not None:  # where the job id lives (local | slurm) stays known
        data['scheduler'] = old['scheduler']
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


def manifest_mismatch(old: dict, new: dict, keys=IDENTITY_KEYS) -> list[str]:
    """Fields among ``keys`` that differ between two manifests."""
    return [k for k in keys if old.get(k) != new.get(k)]


# --------------------------------------------------------------------------------------------- identity
#: Top-level config keys that do not change what a run computes (where it logs, how it is visualised, where it
#: resumes from): left out of the identity hash, so switching TensorBoard on or moving a runs root keeps a run's
#: identity.
IDENTITY_EXCLUDED = ('visualizer', 'vis_backends', 'work_dir', 'launcher', 'resume', 'load_from', 'log_level',
                     'log_processor')


def config_hash(config_data: dict) -> str:
    """SHA-256 of a run's resolved config as data (``json_data(cfg.to_dict())``), without
    :data:`IDENTITY_EXCLUDED` and without the seed (``randomness.seed``: seeds of one run share its identity); key
    order and formatting do not matter."""
    import hashlib
    data = {k: v for k, v in config_data.items() if k not in IDENTITY_EXCLUDED}
    if isinstance(data.get('randomness'), dict):
        data['randomness'] = {k: v for k, v in data['randomness'].items() if k != 'seed'}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(',', ':')).encode()).hexdigest()


def identity(config_data: dict, code: dict | None) -> str:
    """A run's identity: SHA-256 (first 16 hex digits) of its config hash and the code that ran it
    (:func:`code_state`'s ``code_sha256``: the committed code trees plus any uncommitted change to them). Seeds are
    only grouped in a table when their identities are equal."""
    import hashlib
    key = json.dumps(dict(config=config_hash(config_data), code=(code or {}).get('code_sha256')), sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


#: What decides what a run computes: a change here (committed or not) is a change of code for a run's identity.
#: Other files (README, results/, notebooks, analysis/) do not touch training.
CODE_PATHS = ('adapter', 'ops', 'experiments', 'tools', 'pyproject.toml', 'requirements.txt')


def run_identity(manifest: dict | None, config: dict | None) -> str | None:
    """The identity of a run folder, computed from its data (``config.json`` and the manifest's ``code``) by
    :func:`identity`, so that every run is compared by today's rule; the manifest's recorded ``identity`` for runs
    that lack either (None for runs made before identities existed)."""
    manifest = manifest or {}
    if isinstance(config, dict) and isinstance(manifest.get('code'), dict):
        return identity(config, manifest['code'])
    return manifest.get('identity')


def code_state(repo: Path = REPO_ROOT) -> dict:
    """The code a run is launched with.

    ``commit``: HEAD (None outside a git checkout); ``dirty``: :data:`CODE_PATHS` differ from HEAD (changed or new
    files); ``diff_sha256``: hash of those differences, so two uncommitted states differ; ``code_sha256``: hash of
    the committed trees of :data:`CODE_PATHS` plus those differences -- the code itself, so a commit that only
    touches the README or results keeps a run's identity.
    """
    import hashlib
    import subprocess

    def git(*args):
        out = subprocess.run(['git', *args], cwd=repo, capture_output=True, timeout=30)
        return out.stdout if out.returncode == 0 else None
    none = dict(commit=None, dirty=None, diff_sha256=None, code_sha256=None)
    try:
        commit = git('rev-parse', 'HEAD')
        if commit is None:
            return none
        trees = [git('rev-parse', f'HEAD:{p}') or b'-' for p in CODE_PATHS]
        diff = git('diff', 'HEAD', '--binary', '--', *CODE_PATHS) or b''
        untracked = (git('ls-files', '--others', '--exclude-standard', '-z', '--', *CODE_PATHS) or b'').split(b'\0')
    except (OSError, subprocess.TimeoutExpired):
        return none
    h = hashlib.sha256(diff)
    for name in sorted(u for u in untracked if u):
        h.update(name + b'\0')
        try:
            h.update(hashlib.sha256((Path(repo) / name.decode()).read_bytes()).digest())
        except OSError:
            pass
    dirty = bool(diff.strip()) or any(untracked)
    diff_sha = h.hexdigest() if dirty else None
    code = hashlib.sha256(b'\n'.join(t.strip() for t in trees) + (diff_sha or '').encode()).hexdigest()
    return dict(commit=commit.decode().strip(), dirty=dirty, diff_sha256=diff_sha, code_sha256=code)


def describe_code(code: dict | None) -> str:
    code = code or {}
    if not code.get('commit'):
        return 'unknown code (not a git checkout)'
    return (f'commit {code["commit"][:10]}' + (f' + uncommitted changes {code["diff_sha256"][:8]}' if code.get('dirty')
                                                else '') + f' (code {str(code.get("code_sha256"))[:10]})')


# --------------------------------------------------------------------------------------------- locks
LOCK = 'run.lock'
#: Exit code of ``python -m experiments.job`` when another live process holds the run's lock (nothing was done).
LOCKED_EXIT = 75


class RunLocked(RuntimeError):
    """Another live process holds the run's lock; ``holder`` is what its lock file says."""

    def __init__(self, rdir: Path, holder: dict):
        self.holder = holder
        super().__init__(f'{rdir} is being trained by {describe_holder(holder)}; not started twice. Wait for it, '
                         f'or stop it first (a run folder is trained by one process at a time)')


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return 'nobody'
    job = holder.get('job_id')
    return (f'pid {holder.get("pid")} on {holder.get("host")}' + (f', job {job}' if job else '') +
            (f', since {holder["since"]}' if holder.get('since') else ''))


def _hostname() -> str:
    import socket
    return socket.gethostname()


def _read_lock_text(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    if not raw.strip():
        return None
    try:
        data = json.loads(raw.decode('utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {'host': None, 'pid': None, 'unreadable': raw[:200].decode('utf-8', 'replace')}
    return data if isinstance(data, dict) else None


def slurm_job_alive(job_id: str, slurm_states: dict | None) -> bool | None:
    """True/False when SLURM can tell whether ``job_id`` still exists, None when it cannot be asked."""
    if slurm_states is not None:
        return str(job_id) in slurm_states
    from experiments import cluster as cl
    if not cl.squeue_works():
        return None
    return str(job_id) in cl.squeue_states([str(job_id)])


def _other_host(holder: dict) -> bool:
    return holder.get('host') not in (None, _hostname())


def _remote_holder_alive(holder: dict, slurm_states: dict | None) -> bool | None:
    """Whether a holder on another host lives: SLURM's answer when it names a job, else None (nothing can tell)."""
    return slurm_job_alive(holder['slurm_job_id'], slurm_states) if holder.get('slurm_job_id') else None


def lock_holder(rdir: Path, slurm_states: dict | None = None) -> tuple[dict | None, bool | None]:
    """(what the lock file says, whether that holder is alive).

    Alive is decided by the lock itself: the holder keeps a POSIX record lock (``fcntl``) on the file for as long
    as it runs, and the kernel drops it when the process dies (SIGKILL included; unlike ``flock``, a POSIX lock is
    not inherited by forked DataLoader workers, so they cannot keep a dead run "alive"). A holder on another host
    is alive while SLURM knows its job (``slurm_states``: squeue's answer, or asked here); ``None`` when nothing
    can tell. A lock file that is empty or absent has no holder: ``(None, False)``.
    """
    import fcntl
    path = Path(rdir) / LOCK
    mine = _HELD.get(str(path.resolve()))
    if mine is not None:  # held by this process: opening and closing the file here would drop the POSIX lock
        return mine.info, True
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None, False
    try:
        holder = _read_lock_text(fd)
        if holder is None:
            return None, False
        if _other_host(holder) and holder.get('slurm_job_id'):
            return holder, _remote_holder_alive(holder, slurm_states)
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return holder, True
        fcntl.lockf(fd, fcntl.LOCK_UN)
        if _other_host(holder):
            return holder, None  # another host, no SLURM job: locks across hosts are not reliable on every filesystem
        return holder, False
    finally:
        os.close(fd)


#: The locks this process holds, by lock file path.
_HELD: dict[str, 'RunLock'] = {}


class RunLock:
    """The exclusive lock of one run folder, held by the process that trains it.

    ``run.lock`` holds JSON (host, pid, SLURM job id, start time) while held and is emptied on release; the
    process also keeps an exclusive POSIX record lock on it, which the kernel releases when the process dies
    however it dies. Taking the lock fails with :class:`RunLocked` when a live holder has it; a stale lock (its
    holder died) is taken over and said so (``took_over``).
    """

    def __init__(self, rdir: Path, job_id: str | None = None):
        self.rdir = Path(rdir)
        self.path = str((self.rdir / LOCK).resolve())
        self.job_id = job_id
        self.fd: int | None = None
        self.info: dict | None = None
        self.took_over: dict | None = None

    def acquire(self) -> 'RunLock':
        import fcntl
        if self.path in _HELD:
            raise RunLocked(self.rdir, _HELD[self.path].info)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_lock_text(fd) or {}
            os.close(fd)
            raise RunLocked(self.rdir, holder) from None
        old = _read_lock_text(fd)
        if old and _other_host(old):
            if _remote_holder_alive(old, None) is not False:  # another host's live (or uncheckable) holder
                os.close(fd)  # (closing drops the POSIX lock)
                raise RunLocked(self.rdir, old)
        self.took_over = old
        self.info = dict(host=_hostname(), pid=os.getpid(), job_id=self.job_id,
                         slurm_job_id=os.environ.get('SLURM_JOB_ID'), since=now())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.info).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        _HELD[self.path] = self
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)  # drops the POSIX lock
            self.fd = None
            _HELD.pop(self.path, None)

    def __enter__(self) -> 'RunLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------------------------- reading runs
#: States a run folder can be read as: :data:`STATES` (from ``state.json``, ``running``/``queued`` checked against
#: the lock and SLURM) plus ``missing`` (no folder), ``corrupt`` (a run file cannot be read) and ``unknown`` (a
#: folder without ``state.json`` or final metrics).
READ_STATES = STATES + ('missing', 'corrupt', 'unknown')


@dataclass
class RunInfo:
    """One run folder as read from disk (only JSON is read: nothing is executed or unpickled)."""

    path: Path
    state: str
    manifest: dict | None = None
    state_file: dict | None = None
    final: dict | None = None  # final_metrics.json as the job wrote it
    config: dict | None = None  # config.json: the data-only config
    holder: dict | None = None  # the live holder of the run's lock, if any
    checkpoint_iter: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return (self.state_file or {}).get('error') if self.state != 'corrupt' else self.problems[0]

    @property
    def job_id(self) -> str | None:
        return (self.state_file or {}).get('job_id')

    @property
    def identity(self) -> str | None:
        return (self.manifest or {}).get('identity')


def read_run(rdir: Path, slurm_states: dict | None = None) -> RunInfo:
    """Read one run folder and decide its state.

    ``state.json`` says what the launcher and the job last recorded; a ``running`` or ``queued`` run is checked:
    running with a lock whose holder died (SIGKILL, node loss) or a SLURM job SLURM no longer knows is
    ``interrupted``; ``finished`` without readable final metrics is ``failed``. ``slurm_states``: squeue's answer
    for the runs' job ids (see :func:`experiments.cluster.squeue_states`); None asks squeue when needed.
    """
    rdir = Path(rdir)
    info = RunInfo(path=rdir, state='missing')
    if not rdir.is_dir():
        info.problems.append(f'no run folder {rdir}')
        return info
    try:
        info.manifest = read_json(rdir / MANIFEST)
        info.state_file = read_json(rdir / STATE)
        info.final = read_json(rdir / FINAL_METRICS)
    except CorruptRunFile as err:
        info.state = 'corrupt'
        info.problems.append(str(err))
        return info
    try:
        info.config = read_json(rdir / CONFIG_JSON)
    except CorruptRunFile as err:
        info.problems.append(f'{err} (the launcher writes it again)')
    ckpt = last_checkpoint(rdir)
    if ckpt is not None:
        import re
        m = re.search(r'iter_(\d+)', ckpt.name)
        info.checkpoint_iter = int(m.group(1)) if m else None
    if info.manifest is None:
        info.problems.append('no manifest.json')
    elif config_edited(rdir, info.manifest):
        info.problems.append(f'{rdir / CONFIG} differs from the config the launcher wrote (edited?); the job refuses '
                             f'to run it and a relaunch replaces it')
    st = info.state_file or {}
    state = st.get('state')
    if state == 'finished':
        info.state = 'finished' if info.final is not None else 'failed'
        if info.final is None:
            info.problems.append('state.json says finished but final_metrics.json is missing; counted as failed')
    elif state in ('running', 'queued'):
        info.state = state
        holder, alive = lock_holder(rdir, slurm_states)
        if alive:
            info.state, info.holder = 'running', holder
        elif state == 'running' and alive is False and (holder is not None or (rdir / LOCK).exists()):
            info.state = 'interrupted'
            info.problems.append(f'state says running but its process ({describe_holder(holder)}) is gone: '
                                 f'killed without recording it; a relaunch resumes it')
        elif st.get('scheduler') == 'slurm' and st.get('job_id'):
            job_alive = slurm_job_alive(st['job_id'], slurm_states)
            if job_alive is False:
                info.state = 'interrupted'
                info.problems.append(f'state says {state} but SLURM no longer knows job {st["job_id"]}; '
                                     f'a relaunch resumes it')
    elif state in STATES:
        info.state = state
    elif state is None and info.final is not None:
        info.state = 'finished'
        info.problems.append('no state.json; final_metrics.json present, counted as finished')
    else:
        info.state = 'unknown'
        info.problems.append(f'state unknown (state.json {"missing" if state is None else repr(state)}, no '
                             f'final_metrics.json)')
    return info


def seed_dirs(run_folder: Path) -> dict[int, Path]:
    """``{seed: folder}`` of the ``seed<k>`` folders in one run's folder."""
    import re
    out = {}
    if Path(run_folder).is_dir():
        for p in Path(run_folder).iterdir():
            m = re.fullmatch(r'seed(\d+)', p.name)
            if m and p.is_dir():
                out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def grid_folders(runs_root: Path, profile: str, grid: str, seeds=None) -> list[tuple[str, int, Path, bool]]:
    """Every (run, seed, folder, in the grid definition) of a grid: the grid's runs (``experiments.grids``) for
    ``seeds`` (a count or a list; default: the seeds found on disk, else 1), then folders on disk that the
    grid does not define (listed, never used in tables)."""
    from experiments.grids import get_grid
    g = get_grid(grid)
    gdir = Path(runs_root).resolve() / profile / grid
    if seeds is None:
        on_disk = sorted({s for name in g.names for s in seed_dirs(gdir / name)} |
                         {s for p in (gdir.iterdir() if gdir.is_dir() else ()) for s in seed_dirs(p)})
        seeds = on_disk or 1
    expected = [(r.name, int(r.seed)) for r in g.runs(seeds)]
    out = [(name, seed, run_dir(runs_root, profile, grid, name, seed), True) for name, seed in expected]
    known = set(expected)
    if gdir.is_dir():
        for p in sorted(gdir.iterdir()):
            for seed, sdir in seed_dirs(p).items():
                if (p.name, seed) not in known:
                    out.append((p.name, seed, sdir, False))
    return out


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


def newest_checkpoint(rdir: Path) -> Path | None:
    """The newest checkpoint whose size matches its record (or that has none): a cheap pick for reading weights
    (analysis); loading it still goes through the weights-only allow-list. :func:`resume_checkpoint` checks more."""
    try:
        records = read_checkpoint_records(rdir)
    except CorruptRunFile:
        records = {}
    for path in checkpoint_candidates(rdir) if Path(rdir).is_dir() else []:
        rec = records.get(path.name)
        try:
            if rec is None or path.stat().st_size == rec.get('size'):
                return path
        except FileNotFoundError:
            continue
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

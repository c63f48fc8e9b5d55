"""Code snapshots for SLURM jobs: a job runs the code it was submitted with, even if the checkout moves on.

A SLURM job may start hours after its submission, and requeue days later; by then the checkout may be on another
commit. Before submitting, the launcher copies the code (:data:`experiments.rundir.CODE_PATHS`: every tracked file
there, with its uncommitted changes, and the new files git does not ignore: exactly what ``code_sha256`` hashes) to
``<runs_root>/<profile>/<grid>/_snapshots/<code_sha256[:16]>/`` and the job's batch script ``cd``s there and puts it
first on ``PYTHONPATH`` (:func:`slurm_setup`). So the code in the run's manifest is the code that runs. A snapshot is
content-addressed: a later submission with the same code reuses it (``SNAPSHOT.json`` marks a complete one).

Data and weights are not copied: ``data/`` and ``pretrained/`` in the snapshot are symlinks to the checkout's.
The job ``chdir``s to its code root (``experiments.rundir.REPO_ROOT``, the snapshot) because the configs name
``data/...`` and ``pretrained/...`` relative to it; with the links, those paths reach the checkout's datasets while
every code path (modules, configs, kernel sources) stays in the snapshot. Keeping the working directory at the
checkout instead would let any path relative to the working directory read the live code.

Similar to ``submitit.helpers.RsyncSnapshot``, without rsync and with the code hash as the folder name.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from experiments import rundir as rd

SNAPSHOTS = '_snapshots'
#: The checkout's folders a job reads but that are not code: linked, not copied.
LINKED = ('data', 'pretrained')
MARK = 'SNAPSHOT.json'


class SnapshotError(RuntimeError):
    """The code could not be snapshotted (not a git checkout, or it changed while it was copied)."""


def code_files(repo: Path = rd.REPO_ROOT) -> list[str]:
    """The files of :data:`experiments.rundir.CODE_PATHS` that ``code_state`` hashes (tracked, plus new files git
    does not ignore), relative to ``repo``; deleted tracked files are left out."""
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard', '--',
                          *rd.CODE_PATHS], cwd=repo, capture_output=True, timeout=60)
    if out.returncode != 0:
        raise SnapshotError(f'git ls-files failed in {repo}: {out.stderr.decode(errors="replace").strip()}')
    names = sorted({n.decode() for n in out.stdout.split(b'\0') if n})
    return [n for n in names if (Path(repo) / n).is_file()]


def take(dest_root: Path, repo: Path = rd.REPO_ROOT, code: dict | None = None) -> Path:
    """The snapshot of the code of ``repo`` under ``dest_root`` (made now, or reused when one with the same code
    hash exists).

    Args:
        dest_root: The folder of the snapshots (``<runs_root>/<profile>/<grid>/_snapshots``).
        repo: The checkout.
        code: ``rundir.code_state(repo)`` when the caller has it (the manifests' code); the snapshot must be that
            code.

    Raises:
        SnapshotError: not a git checkout, or the code changed since ``code`` / while it was copied.
    """
    repo = Path(repo).resolve()
    now = rd.code_state(repo)
    if not now.get('code_sha256'):
        raise SnapshotError(f'{repo} is not a git checkout: its code cannot be snapshotted for SLURM jobs')
    if code is not None and code.get('code_sha256') != now['code_sha256']:
        raise SnapshotError(f'the code changed since the runs were prepared ({rd.describe_code(code)}, now '
                            f'{rd.describe_code(now)}); relaunch')
    dest_root = Path(dest_root).resolve()
    dest = dest_root / now['code_sha256'][:16]
    if (dest / MARK).is_file():
        return dest
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = dest_root / f'.tmp-{dest.name}-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name in code_files(repo):
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, target)
        for name in LINKED:
            os.symlink(repo / name, tmp / name)  # may dangle until the data is there (checked at launch)
        after = rd.code_state(repo)
        if after['code_sha256'] != now['code_sha256']:
            raise SnapshotError(f'the code in {repo} changed while it was copied ({rd.describe_code(now)} -> '
                                f'{rd.describe_code(after)}); relaunch once it is settled')
        rd.write_json(tmp / MARK, dict(code=now, source=str(repo), files=len(code_files(repo)), created=rd.now()))
        try:
            os.rename(tmp, dest)
        except OSError:  # another launcher made the same snapshot meanwhile: same code, keep theirs
            if not (dest / MARK).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_mark(snapshot: Path) -> dict | None:
    """What ``SNAPSHOT.json`` says: the code (``rundir.code_state``) and the checkout it was copied from."""
    return rd.read_json(Path(snapshot) / MARK)


def slurm_setup(snapshot: Path) -> list[str]:
    """Lines for the batch script (submitit ``slurm_setup``): run from the snapshot, import from it first."""
    snap = shlex.quote(str(snapshot))
    return [f'cd {snap}', f'export PYTHONPATH={snap}${{PYTHONPATH:+:$PYTHONPATH}}']


def probe(module: str) -> dict:
    """Which code a process sees: ``module``'s file, its ``VALUE`` (if any), the code root and the working directory.
    A trivial job for checking the snapshot mechanism (the SLURM test submits it)."""
    import importlib
    mod = importlib.import_module(module)
    return dict(file=str(Path(mod.__file__).resolve()), value=getattr(mod, 'VALUE', None), cwd=os.getcwd(),
                code_root=str(rd.REPO_ROOT), data=str(Path('data').resolve()))

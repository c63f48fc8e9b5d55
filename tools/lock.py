"""The locked environment: ``requirements.lock``, the exact package set ``make install`` installs.

Usage (standard library only; any Python 3.11 runs it):
    python tools/lock.py write VENV_PYTHON [--out requirements.lock]   # freeze a venv into the lock (`make lock`)
    python tools/lock.py check [--python PY] [--lock requirements.lock] [--cuda]
                                                                       # the venv holds exactly the lock (install.sh)
    python tools/lock.py stale [--lock requirements.lock]              # exit 1 when pyproject.toml/requirements.txt
                                                                       # changed since the lock was written
    python tools/lock.py constraints [--cuda]                          # the lock as pip lines for tools/install.sh

``make lock`` resolves the declared dependencies ([project] dependencies in pyproject.toml plus requirements.txt)
in a scratch venv with ``tools/install.sh`` (RESOLVE=1: the CPU torch, mmcv from the wheelhouse, then pip's
resolver) and writes every package ``pip freeze --all`` shows there, except pip and the suite itself, as
``name==version``. The header records a hash of the declared dependencies, so a lock older than them is noticed.

``--cuda`` (``make install-cuda``): torch, its CUDA packages (nvidia-*, triton) and mmcv come from the CUDA
install, not from the lock; everything else is locked as on CPU.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / 'requirements.lock'
#: Never locked: pip belongs to the venv, the suite is installed editable from the checkout.
NOT_LOCKED = ('pip', 'vit-adapter-suite')
#: Installed by the CUDA path itself (tools/install.sh CUDA=1), so not taken from the (CPU) lock there.
CUDA_OWN = re.compile(r'^(torch|mmcv|triton|nvidia-.*)$')


def norm(name: str) -> str:
    """PEP 503 normalised project name (``Jinja2`` -> ``jinja2``, ``typing_extensions`` -> ``typing-extensions``)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def declared(repo: Path = REPO) -> list[str]:
    """The declared dependencies: pyproject's [project] dependencies, then requirements.txt's lines."""
    deps = list(tomllib.loads((repo / 'pyproject.toml').read_text())['project'].get('dependencies', []))
    for line in (repo / 'requirements.txt').read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            deps.append(line)
    return deps


def inputs_sha256(repo: Path = REPO) -> str:
    return hashlib.sha256(json.dumps(declared(repo)).encode()).hexdigest()


def parse_line(line: str) -> tuple[str, str] | None:
    """(normalised name, version) of one ``pip freeze`` / lock line; None for comments, options, editables.

    ``name @ file:///.../name-1.2.3-...whl`` (a wheel installed from a file, as mmcv from the wheelhouse) gives the
    wheel's version.
    """
    line = line.strip()
    if not line or line.startswith(('#', '-')):
        return None
    if '==' in line:
        name, version = line.split('==', 1)
        return norm(name.strip()), version.split(';', 1)[0].strip()
    if ' @ ' in line:
        name, url = line.split(' @ ', 1)
        m = re.search(r'/[^/]+?-([^-/]+)-[^/]*\.whl', url)
        return norm(name.strip()), (m.group(1) if m else url.strip())
    raise ValueError(f'unexpected line {line!r}')


def parse(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        item = parse_line(line)
        if item and item[0] not in NOT_LOCKED:
            out[item[0]] = item[1]
    return out


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """``{normalised name: version}`` of the lock file."""
    return parse(Path(path).read_text().splitlines())


def lock_inputs_sha256(path: Path = LOCK) -> str | None:
    m = re.search(r'^# inputs-sha256: ([0-9a-f]{64})$', Path(path).read_text(), re.M)
    return m.group(1) if m else None


def freeze(python: str = sys.executable) -> list[str]:
    """``pip freeze --all --exclude-editable`` of the environment of ``python``."""
    out = subprocess.run([python, '-m', 'pip', 'freeze', '--all', '--exclude-editable'], capture_output=True,
                         text=True, check=True)
    return out.stdout.splitlines()


def compare(lock: dict[str, str], installed: dict[str, str], cuda: bool = False) -> list[str]:
    """Differences between the lock and what is installed, one line each (empty: they match). A package installed
    but not locked reads ``NAME==VERSION is installed but not in the lock``."""
    problems = []
    for name in sorted(set(lock) | set(installed)):
        if cuda and CUDA_OWN.match(name):
            continue
        want, have = lock.get(name), installed.get(name)
        if want is None:
            problems.append(f'{name}=={have} is installed but not in the lock')
        elif have is None:
            problems.append(f'{name}=={want} is in the lock but not installed')
        elif want != have:
            problems.append(f'{name}: lock {want}, installed {have}')
    return problems


def write(python: str, out: Path = LOCK) -> int:
    """Write the lock from the venv of ``python``; returns the number of packages."""
    pkgs = parse(freeze(python))
    ver = subprocess.run([python, '-c', 'import platform, sysconfig; print(platform.python_version(), '
                          'sysconfig.get_platform())'], capture_output=True, text=True, check=True).stdout.split()
    names = {norm(n): n for n in (line.split('==')[0].split(' @ ')[0].strip() for line in freeze(python)
                                  if line.strip() and not line.startswith(('#', '-')))}
    lines = [
        '# requirements.lock: the exact package set `make install` installs (tools/install.sh). Do not edit by hand:',
        '# generated by `make lock` (tools/lock.py), which resolves [project] dependencies of pyproject.toml and',
        '# requirements.txt in a scratch venv (CPU torch, mmcv from the wheelhouse) and writes what pip freeze shows',
        '# there, except pip and the suite itself.',
        f'# inputs-sha256: {inputs_sha256()}',
        f'# python: {ver[0]} on {ver[1]}',
    ]
    lines += [f'{names.get(n, n)}=={v}' for n, v in sorted(pkgs.items())]
    Path(out).write_text('\n'.join(lines) + '\n')
    return len(pkgs)


def constraints(cuda: bool = False, path: Path = LOCK) -> list[str]:
    """The lock's pins as pip requirement lines (``--cuda``: without the packages the CUDA install brings)."""
    return [f'{n}=={v}' for n, v in sorted(read_lock(path).items()) if not (cuda and CUDA_OWN.match(n))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='tools/lock.py', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    w = sub.add_parser('write', help='freeze a venv into the lock')
    w.add_argument('python', help='the python of the venv to freeze')
    w.add_argument('--out', default=str(LOCK))
    c = sub.add_parser('check', help='the venv holds exactly the lock')
    c.add_argument('--python', default=sys.executable)
    c.add_argument('--lock', default=str(LOCK))
    c.add_argument('--cuda', action='store_true')
    c.add_argument('--allow-extra', action='store_true',
                   help='packages installed beyond the lock (wandb, mlflow by hand) are a warning, not an error')
    s = sub.add_parser('stale', help='exit 1 when the declared dependencies changed since the lock was written')
    s.add_argument('--lock', default=str(LOCK))
    k = sub.add_parser('constraints', help='print the lock as pip requirement lines')
    k.add_argument('--lock', default=str(LOCK))
    k.add_argument('--cuda', action='store_true')
    args = parser.parse_args(argv)
    if args.cmd == 'write':
        n = write(args.python, Path(args.out))
        print(f'[lock] wrote {args.out}: {n} packages')
        return 0
    lock = Path(args.lock)
    if not lock.is_file():
        print(f'[lock] error: {lock} is missing; run `make lock` to write it', file=sys.stderr)
        return 1
    if args.cmd == 'stale':
        if lock_inputs_sha256(lock) != inputs_sha256():
            print(f'[lock] error: {lock.name} is older than the dependencies declared in pyproject.toml / '
                  f'requirements.txt; run `make lock` to resolve them again (and commit the new lock)', file=sys.stderr)
            return 1
        return 0
    if args.cmd == 'constraints':
        print('\n'.join(constraints(args.cuda, lock)))
        return 0
    problems = compare(read_lock(lock), parse(freeze(args.python)), cuda=args.cuda)
    extra = [p for p in problems if p.endswith('not in the lock')]
    if args.allow_extra and extra:
        print('[lock] warning: installed beyond the lock (not part of the locked environment): ' +
              ', '.join(p.split()[0] for p in extra), file=sys.stderr)
        problems = [p for p in problems if p not in extra]
    if problems:
        print(f'[lock] error: the venv differs from {lock.name}:\n  ' + '\n  '.join(problems) +
              '\n  (`make clean-venv install` installs the lock afresh; if the lock is what should change: `make lock`)', file=sys.stderr)
        return 1
    print(f'[lock] ok: the venv holds exactly {lock.name} ({len(read_lock(lock))} packages)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

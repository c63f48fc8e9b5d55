"""The software and hardware a run is launched with, for its manifest: ``pip freeze`` and the GPU/CUDA/driver.

Recorded, never compared: a run's identity is its config and code (``experiments.rundir.identity``); the
environment says what else was there, so a difference between two tables can be traced to a package or a driver.
The exact package set a fresh ``make install`` gives is ``requirements.lock`` (``tools/lock.py``).
"""
from __future__ import annotations

import functools
import platform
import shutil
import subprocess
import sys


@functools.lru_cache(maxsize=None)
def pip_freeze(python: str = sys.executable) -> tuple[str, ...]:
    """``pip freeze --all`` of this interpreter's environment (asked once per process); falls back to the installed
    distributions (``name==version`` from ``importlib.metadata``) when pip cannot be run."""
    try:
        out = subprocess.run([python, '-m', 'pip', 'freeze', '--all'], capture_output=True, text=True, timeout=120)
        if out.returncode == 0 and out.stdout.strip():
            return tuple(line for line in out.stdout.splitlines() if line.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    import importlib.metadata as md
    return tuple(sorted({f'{d.metadata["Name"]}=={d.version}' for d in md.distributions() if d.metadata['Name']},
                        key=str.lower))


def nvidia_driver() -> str:
    """The NVIDIA driver version ``nvidia-smi`` reports (first GPU), or ``'none'`` without nvidia-smi or a GPU."""
    if shutil.which('nvidia-smi') is None:
        return 'none'
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 'none'
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines[0] if out.returncode == 0 and lines else 'none'


@functools.lru_cache(maxsize=None)
def gpu_info() -> dict:
    """The accelerator this process sees: ``torch_cuda`` (``torch.version.cuda``), ``device`` (name of GPU 0),
    ``device_count``, ``driver`` (nvidia-smi) and ``cudnn``; ``'none'`` for each that does not exist (CPU)."""
    import torch
    info = dict(torch=torch.__version__, torch_cuda=torch.version.cuda or 'none', device='none', device_count=0,
                driver=nvidia_driver(), cudnn='none')
    if torch.cuda.is_available():
        info.update(device=torch.cuda.get_device_name(0), device_count=torch.cuda.device_count())
        if torch.backends.cudnn.is_available():
            info['cudnn'] = str(torch.backends.cudnn.version())
    return info


def environment() -> dict:
    """What the manifest records: the interpreter, the host, ``pip freeze`` and :func:`gpu_info`."""
    return dict(python=platform.python_version(), executable=sys.executable, platform=platform.platform(),
                host=platform.node(), pip_freeze=list(pip_freeze()), gpu=gpu_info())

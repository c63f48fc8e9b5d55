"""Lazy, cached, process-safe build of the compiled MSDeformAttn kernels.

Nothing here runs at import. ``load_extension('cpu')`` builds ``ops/csrc`` for the CPU (C++ with OpenMP),
``load_extension('cuda')`` adds the CUDA kernel (needs nvcc and a CUDA build of torch). Builds go to a
per-user cache directory keyed by a hash of the sources, the torch version, the compiler flags and the
CPU's instruction-set flags (the CPU build uses ``-march=native``)::

    $VIT_ADAPTER_OPS_CACHE  or  ${XDG_CACHE_HOME:-~/.cache}/vit_adapter/ops
        msda_cpu_<hash>/            ninja build tree and the .so
        msda_cpu_<hash>.lock        fcntl lock: two processes never build the same tree at once

A finished build is marked with a ``.complete`` file and later loads import the .so directly (no ninja).

References:
    ``torch.utils.cpp_extension.load``; detectron2 ``layers/csrc`` (one folder per op, one binding file).
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch

logger = logging.getLogger(__name__)

CSRC = Path(__file__).resolve().parent / 'csrc'
CPU_SOURCES = ['msda.cpp', 'ms_deform_attn/ms_deform_attn_cpu.cpp']
CUDA_SOURCES = CPU_SOURCES + ['ms_deform_attn/ms_deform_attn_cuda.cu']
HEADERS = ['ms_deform_attn/ms_deform_attn.h']
# -fassociative-math (+ the two flags it needs) lets the compiler vectorise the dot-product reductions of
# the backward as trees instead of lane-by-lane sums (about 20% faster); NaN/Inf semantics are kept.
CPU_CFLAGS = ['-O3', '-march=native', '-fopenmp', '-ffp-contract=fast', '-fassociative-math', '-fno-signed-zeros',
              '-fno-trapping-math']
CPU_LDFLAGS = ['-fopenmp']
CUDA_CFLAGS = CPU_CFLAGS + ['-DWITH_CUDA']
NVCC_FLAGS = ['-O3', '-DWITH_CUDA']

_LOADED: dict[str, ModuleType] = {}
_LOCK = threading.Lock()


class ExtensionBuildError(RuntimeError):
    """The compiled kernel could not be built or loaded (compiler missing, build failed, ...)."""


def cache_root() -> Path:
    """The per-user build cache (``$VIT_ADAPTER_OPS_CACHE`` or ``~/.cache/vit_adapter/ops``)."""
    env = os.environ.get('VIT_ADAPTER_OPS_CACHE')
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')).expanduser() / 'vit_adapter' / 'ops'


def _cpu_isa() -> str:
    """The CPU's instruction-set flags (``-march=native`` output differs between machines)."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('flags'):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_key(kind: str) -> str:
    """Hash of everything that changes the binary: sources, flags, torch version, CPU, CUDA arch list."""
    h = hashlib.sha256()
    for rel in (CUDA_SOURCES if kind == 'cuda' else CPU_SOURCES) + HEADERS:
        h.update(rel.encode())
        h.update((CSRC / rel).read_bytes())
    flags = CPU_CFLAGS + CPU_LDFLAGS if kind == 'cpu' else CUDA_CFLAGS + NVCC_FLAGS
    h.update(' '.join(flags).encode())
    h.update(torch.__version__.encode())
    h.update(sys.version.encode())
    h.update(_cpu_isa().encode())
    if kind == 'cuda':
        h.update(str(torch.version.cuda).encode())
        h.update(os.environ.get('TORCH_CUDA_ARCH_LIST', '').encode())
    return h.hexdigest()[:16]


def extension_name(kind: str) -> str:
    return f'vit_adapter_msda_{kind}_{build_key(kind)}'


def _ensure_ninja_on_path() -> None:
    # `.venv/bin/python` does not put the venv's bin (where ninja lives) on PATH.
    if shutil.which('ninja') is None:
        bindir = os.path.dirname(sys.executable)
        if os.path.exists(os.path.join(bindir, 'ninja')):
            os.environ['PATH'] = bindir + os.pathsep + os.environ.get('PATH', '')


def _import_so(name: str, so_path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(name, str(so_path))
    spec = importlib.util.spec_from_file_location(name, str(so_path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[name] = module
    return module


def _build(kind: str, verbose: bool) -> ModuleType:
    from torch.utils import cpp_extension

    name = extension_name(kind)
    root = cache_root()
    build_dir = root / name
    build_dir.mkdir(parents=True, exist_ok=True)
    so_path = build_dir / f'{name}.so'
    marker = build_dir / '.complete'
    if marker.exists() and so_path.exists():
        return _import_so(name, so_path)
    if kind == 'cuda' and cpp_extension.CUDA_HOME is None:
        raise ExtensionBuildError('ms_deform_attn: no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)')
    if kind == 'cuda' and torch.version.cuda is None:
        raise ExtensionBuildError('ms_deform_attn: this torch build has no CUDA support')
    _ensure_ninja_on_path()
    with open(root / f'{name}.lock', 'w') as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # blocks while another process builds the same tree
        try:
            if marker.exists() and so_path.exists():  # the other process finished it
                return _import_so(name, so_path)
            logger.warning('ms_deform_attn: building the %s kernel in %s (first use; about a minute)', kind,
                           build_dir)
            sources = [str(CSRC / s) for s in (CUDA_SOURCES if kind == 'cuda' else CPU_SOURCES)]
            kwargs = dict(name=name, sources=sources, build_directory=str(build_dir), verbose=verbose,
                          extra_include_paths=[str(CSRC)])
            if kind == 'cuda':
                kwargs.update(extra_cflags=CUDA_CFLAGS, extra_cuda_cflags=NVCC_FLAGS, extra_ldflags=CPU_LDFLAGS)
            else:
                kwargs.update(extra_cflags=CPU_CFLAGS, extra_ldflags=CPU_LDFLAGS)
            module = cpp_extension.load(**kwargs)
            marker.write_text(f'{torch.__version__}\n')
            return module
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def load_extension(kind: str, verbose: bool = False) -> ModuleType:
    """Build (first use, cached on disk) and import the compiled kernel.

    Args:
        kind: 'cpu' (C++/OpenMP only) or 'cuda' (CPU + CUDA kernels).
        verbose: print the compiler output.

    Returns:
        The extension module with ``forward``, ``backward`` and ``with_cuda``.

    Raises:
        ExtensionBuildError: no compiler / toolkit, or the build failed.
    """
    if kind not in ('cpu', 'cuda'):
        raise ValueError(f"load_extension: kind must be 'cpu' or 'cuda', got {kind!r}")
    with _LOCK:
        if kind in _LOADED:
            return _LOADED[kind]
        try:
            module = _build(kind, verbose)
        except ExtensionBuildError:
            raise
        except Exception as exc:  # compiler missing, compile error, import error: one clear error type
            raise ExtensionBuildError(f'ms_deform_attn: building the {kind} kernel failed: {exc}') from exc
        _LOADED[kind] = module
        return module


def is_loaded(kind: str) -> bool:
    return kind in _LOADED

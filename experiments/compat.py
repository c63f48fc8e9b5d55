"""Compatibility of the pinned 2023 OpenMMLab stack with current torch. One place, one fix per break.

Break 1 -- checkpoint loading. mmengine 0.10.7 loads local checkpoints with a bare ``torch.load``. Since
torch 2.6 that means ``weights_only=True``, and mmengine's own checkpoints (``message_hub``, numpy scalars,
the config in ``meta``) are not plain tensors, so ``Runner.resume`` fails. Flipping the default back for
every file would let any downloaded ``.pth`` run arbitrary code on load, so this module trusts only the
checkpoints this suite wrote:

* a directory is trusted when it, or one of its ancestors, holds the marker file ``.vit_adapter_trusted``
  (``trust_dir`` writes it; the launcher calls it for every run directory it creates), or when it is listed
  in the environment variable ``VIT_ADAPTER_TRUSTED_DIRS`` (``os.pathsep``-separated);
* checkpoints in trusted directories load with pickling (``weights_only=False``);
* every other checkpoint loads ``weights_only=True``; if it needs pickling, the error says how to trust it.

``patch_mmengine()`` installs this as mmengine's local-file checkpoint loader (idempotent). The mmdet/mmseg
shims call it on import, so any config with ``custom_imports`` of a shim gets it.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
from pathlib import Path

import torch

MARKER = '.vit_adapter_trusted'
ENV_TRUSTED = 'VIT_ADAPTER_TRUSTED_DIRS'
_PATCHED = False


class UntrustedCheckpointError(RuntimeError):
    """A checkpoint outside the suite's trusted directories needs pickling to load."""


def trust_dir(path: str | os.PathLike) -> Path:
    """Marks ``path`` (created if needed) as holding checkpoints written by this suite; returns the marker."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER
    if not marker.exists():
        marker.write_text('Checkpoints below this directory were written by the ViT-Adapter suite and are '
                          'loaded with pickling enabled (see experiments/compat.py).\n')
    return marker


def is_trusted(filename: str | os.PathLike) -> bool:
    """True when ``filename`` lies under a directory marked by ``trust_dir`` or listed in the env variable."""
    real = Path(osp.realpath(osp.expanduser(str(filename))))
    env_dirs = [Path(osp.realpath(d)) for d in os.environ.get(ENV_TRUSTED, '').split(os.pathsep) if d]
    for parent in real.parents:
        if (parent / MARKER).is_file() or parent in env_dirs:
            return True
    return False


def load_checkpoint_file(filename: str | os.PathLike, map_location=None):
    """``torch.load`` with pickling only for trusted checkpoints (see module docstring)."""
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    if is_trusted(filename):
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UntrustedCheckpointError(
            f'checkpoint {filename} contains pickled Python objects and is not under a directory this suite '
            f'trusts, so it was not loaded (loading it would run code from the file). If you trust it, mark '
            f'its folder with experiments.compat.trust_dir(folder) or add the folder to ${ENV_TRUSTED}. '
            f'Original error: {str(err).splitlines()[0]}') from err


def _mmengine_local_loader(filename, map_location):
    return load_checkpoint_file(filename, map_location)


_mmengine_local_loader.__name__ = 'load_from_local'  # mmengine logs the loader name after 'load_from_'


def patch_mmengine() -> None:
    """Installs ``load_checkpoint_file`` as mmengine's loader for local paths (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_mmengine_local_loader, force=True)
    _PATCHED = True

"""Compatibility of the pinned 2023 OpenMMLab stack with current torch. One place, one fix per break.

Break 1 -- checkpoint loading. mmengine 0.10.7 loads local checkpoints with a bare ``torch.load``. Since
torch 2.6 that means ``weights_only=True``, and mmengine's own checkpoints hold a few Python objects besides
tensors (the message hub's ``HistoryBuffer`` with numpy arrays, numpy scalars, the numpy RNG state), so
``Runner.resume`` fails. Unpickling with ``weights_only=False`` would let any ``.pth`` in a (shared) runs root
run arbitrary code on load, so this module never does: **every checkpoint loads with** ``weights_only=True``,
with :data:`SAFE_GLOBALS` -- the few globals an mmengine 0.10.7 checkpoint of this suite holds, measured with
``torch.serialization.get_unsafe_globals_in_checkpoint`` on real detection and segmentation runs -- allowed for
the duration of the load. No file, marker or directory is trusted (the old ``.vit_adapter_trusted`` marker and
``VIT_ADAPTER_TRUSTED_DIRS`` are ignored).

* A file that needs any other global is refused with :class:`UnsafeCheckpointError`, naming the globals it wanted.
* A truncated, random or non-torch file is refused with :class:`CorruptCheckpointError` (never advice to trust it).

``patch_mmengine()`` installs :func:`load_checkpoint_file` as mmengine's local-file checkpoint loader (idempotent).
The mmdet/mmseg shims call it on import, so any config with ``custom_imports`` of a shim gets it.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import re

import torch

_PATCHED = False
_SAFE = None


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint needs a global outside :data:`SAFE_GLOBALS` (loading it could run code); it was not loaded."""


class CorruptCheckpointError(RuntimeError):
    """The file is not a readable torch checkpoint (truncated, random bytes, another format)."""


#: Kept for code written against the old trust-marker API: the same refusal.
UntrustedCheckpointError = UnsafeCheckpointError


#: numpy dtype classes a loaded array or scalar may have (the unpickler checks the class of every dtype it builds).
_NUMPY_DTYPES = ('Float64DType', 'Float32DType', 'Float16DType', 'Int64DType', 'Int32DType', 'Int16DType',
                 'Int8DType', 'UInt64DType', 'UInt32DType', 'UInt16DType', 'UInt8DType', 'BoolDType')
#: The statistics methods mmengine's HistoryBuffer registers for itself (``_set_default_statistics``).
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _restricted_getattr(obj, name):
    """``getattr`` as pickle uses it for HistoryBuffer's statistics methods (``getattr(HistoryBuffer, 'mean')``).

    Only that lookup is allowed: any other object or attribute is refused, so an allowed ``builtins.getattr``
    cannot reach module globals or other callables.
    """
    from mmengine.logging.history_buffer import HistoryBuffer  # noqa: PLC0415
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint (only the '
                                 f'statistics methods of mmengine HistoryBuffer are)')


def safe_globals() -> list:
    """The allow-list handed to ``torch.serialization.safe_globals`` for every checkpoint load.

    Each entry is ``(object, name in the pickle)``. Why each is there (all seen in suite checkpoints, see module
    docstring):

    * ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``: numpy arrays -- the message
      hub's ``HistoryBuffer`` log/count histories and the numpy RNG state that ``RNGStateHook`` saves;
    * ``numpy.dtypes.Float64DType``, ``UInt32DType``, ... (numeric and bool dtype classes only): the class of each
      dtype the unpickler builds (float64 histories and scalars, the uint32 RNG key);
    * ``numpy._core.multiarray.scalar``: numpy scalars, e.g. the ``eta`` (``np.float64``) in the message hub's
      runtime info;
    * ``mmengine.logging.history_buffer.HistoryBuffer``: the message hub's ``log_scalars``;
    * ``builtins.getattr`` -- only as :func:`_restricted_getattr`: ``HistoryBuffer.statistics_methods`` holds
      its own methods, which pickle writes as ``getattr(HistoryBuffer, 'mean')``;
    * ``numpy.core.multiarray._reconstruct`` / ``numpy.core.multiarray.scalar``: the same two functions under the
      names numpy 1.x writes (checkpoints saved with numpy < 2).

    ``collections.OrderedDict`` (state dicts, message hub) and ``collections.Counter`` (MultiStepLR milestones)
    are already allowed by torch.
    """
    global _SAFE
    if _SAFE is None:
        import numpy as np  # noqa: PLC0415
        from mmengine.logging.history_buffer import HistoryBuffer  # noqa: PLC0415
        try:
            from numpy._core import multiarray  # noqa: PLC0415 - numpy >= 2
        except ImportError:  # pragma: no cover - numpy 1.x
            from numpy.core import multiarray  # noqa: PLC0415
        _SAFE = [
            (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
            (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
            (multiarray.scalar, 'numpy._core.multiarray.scalar'),
            (multiarray.scalar, 'numpy.core.multiarray.scalar'),
            (np.ndarray, 'numpy.ndarray'),
            (np.dtype, 'numpy.dtype'),
            *[(getattr(np.dtypes, n), f'numpy.dtypes.{n}') for n in _NUMPY_DTYPES if hasattr(np, 'dtypes')],
            (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
            (_restricted_getattr, 'builtins.getattr'),
        ]
    return list(_SAFE)


def allowed_names() -> set[str]:
    """Full names of the globals :func:`load_checkpoint_file` allows (besides torch's own defaults)."""
    return {name for _, name in safe_globals()}


def _unsafe_globals(filename: str) -> list[str]:
    """Globals of a zip checkpoint outside torch's defaults and :data:`SAFE_GLOBALS` (read without unpickling)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # noqa: BLE001 - legacy (non-zip) format or unreadable: the load error says enough
        return []
    return [g for g in found if g not in allowed_names()]


def load_checkpoint_file(filename: str | os.PathLike, map_location=None):
    """``torch.load(weights_only=True)`` with the suite's allow-list; never unpickles anything else.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file needs a global outside the allow-list (named in the message).
        CorruptCheckpointError: the file is not a readable torch checkpoint.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - classified below; nothing was unpickled outside the allow-list
        detail = _detail(err)
        wanted = _unsafe_globals(filename) if isinstance(err, pickle.UnpicklingError) else []
        if not wanted and isinstance(err, pickle.UnpicklingError):
            if re.search(r'getattr\(|unrecognized function|Unsupported class', detail):
                wanted = [detail]
            else:
                wanted = re.findall(r"GLOBAL (\S+?)(?: was| whose|$|\s)", detail) + re.findall(r"<class '([^']+)'>", detail)
        if not wanted:
            raise CorruptCheckpointError(
                f'{filename} is not a readable torch checkpoint (truncated, corrupt, or not a torch file at all); '
                f'nothing was loaded. Re-create or re-download it. ({type(err).__name__}: {detail})') from None
        raise UnsafeCheckpointError(
            f'checkpoint {filename} was refused: it needs {", ".join(dict.fromkeys(wanted))}, which is not on the '
            f'allow-list in experiments/compat.py (unpickling it could run code from the file, so nothing was '
            f'unpickled). Checkpoints written by this suite never need it. If the file is a foreign checkpoint '
            f'from a source you trust, re-save its tensors from a Python session in '
            f'which you decided to trust it (`torch.save(torch.load(SRC, weights_only=False)["state_dict"], DST)`; '
            f'official ViT-Adapter checkpoints: `python -m adapter.convert SRC DST --trust`); if it is plain data that mmengine writes into its own checkpoints, add it to '
            f'experiments.compat.safe_globals().') from None


def _detail(err: BaseException) -> str:
    """The informative part of a torch.load error (torch wraps it in a long generic message)."""
    text = str(err).split('Check the documentation of torch.load')[0]
    text = text.split('WeightsUnpickler error:')[-1] if 'WeightsUnpickler error:' in text else text
    paras = [p.strip() for p in re.split(r'\n\s*\n', text) if p.strip()]
    if 'weights_only' in ''.join(paras[:1]) and len(paras) > 1:
        paras = paras[1:]
    out = paras[-1] if paras else ''
    return ' '.join(out.split())[:400] or repr(err)


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

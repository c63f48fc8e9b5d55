"""Model size (#Param) and backbone FLOPs of a run, for runs whose final metrics do not record them.

The job records ``params_m`` in ``final_metrics.json`` (see ``experiments.hooks.FinalMetricsHook``); the tables
use that. For runs without it (still running, failed, or older) we rebuild the model from the run's data-only
config (``config.json``, a dict) -- never from config text, which would execute Python from the runs root. The
whole model is built through the task's registry (mmdet or mmseg, with this suite's shims) on the ``meta``
device (no memory, no weights); if that fails we build the backbone alone with ``adapter.build_backbone`` and
say so. Every ``type`` in the dict must name a registered class (``_check_types``) and mmengine's fallback that
imports ``type`` strings as Python objects is disabled during the build, so a config dict cannot name arbitrary
callables. Any failure is returned as a reason, never raised: the table then shows '-'.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import re
from functools import lru_cache

import torch

#: Registry scopes a config may name (``_scope_`` or a ``scope.Type`` prefix).
_SCOPES = ('mmdet', 'mmseg', 'mmengine')
_TYPE = re.compile(r'^(?:(?:mmdet|mmseg|mmengine)\.)?[A-Za-z_][A-Za-z0-9_]*$')
NO_CONFIG = ('not available: the run has no config.json (data-only config; runs launched before it existed). Its '
             'config text is never executed')


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) of a module."""
    return sum(p.numel() for p in module.parameters())


def _check_types(obj, where: str = 'model') -> None:
    """Every ``type`` a plain registered-name string, every ``_scope_`` a known scope (raises ValueError)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == 'type' and not (isinstance(v, str) and _TYPE.match(v)):
                raise ValueError(f'{where}.type = {v!r} is not a registered class name; not built')
            if k == '_scope_' and v not in _SCOPES:
                raise ValueError(f'{where}._scope_ = {v!r} is not one of {_SCOPES}; not built')
            _check_types(v, f'{where}.{k}')
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_types(v, f'{where}[{i}]')


@contextlib.contextmanager
def _no_import_fallback():
    """Disable mmengine's ``Registry.get`` fallback that imports an unregistered ``type`` string as an object."""
    from mmengine.registry import registry as _reg  # noqa: PLC0415

    def refuse(name):
        raise KeyError(f'{name!r} is not registered (importing it is disabled for run configs)')

    old = _reg.get_object_from_string
    _reg.get_object_from_string = refuse
    try:
        yield
    finally:
        _reg.get_object_from_string = old


def _model_dict(cfg: dict) -> dict:
    if not isinstance(cfg, dict):
        raise TypeError('expected the data-only config (a dict from config.json), not config text')
    model = cfg.get('model')
    if not isinstance(model, dict):
        raise KeyError('the config has no model dict')
    model = json.loads(json.dumps(model))  # a private plain copy
    _check_types(model)
    return model


def _build_full(cfg: dict, task: str | None) -> torch.nn.Module:
    from experiments.models import SCOPES, build_model  # noqa: PLC0415

    scope = cfg.get('default_scope') or SCOPES.get(task or '', 'mmdet')
    tasks = {v: k for k, v in SCOPES.items()}
    if scope not in tasks:
        raise ValueError(f'default_scope {scope!r} is neither mmdet nor mmseg')
    model_cfg = _model_dict(cfg)
    for k in ('pretrained', 'init_cfg'):
        model_cfg.pop(k, None)
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg['backbone']['pretrained'] = None
    with contextlib.redirect_stdout(io.StringIO()), _no_import_fallback():
        try:
            return build_model(tasks[scope], model_cfg, device='meta')
        except Exception:  # noqa: BLE001 -- some modules compute on tensors at build time; retry on CPU
            return build_model(tasks[scope], model_cfg, device='cpu')


def _build_backbone(cfg: dict) -> torch.nn.Module:
    from analysis.features import backbone_cfg  # noqa: PLC0415

    adapter = importlib.import_module('adapter')
    if not hasattr(adapter, 'build_backbone'):
        raise ImportError('adapter.build_backbone is not available')
    bb = backbone_cfg(cfg)
    _check_types(bb, 'model.backbone')
    with torch.device('meta'):
        return adapter.build_backbone(bb)


def _key(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, default=str)


def model_size_from_config(cfg: dict, task: str | None) -> tuple[float, str]:
    """(#Param in millions, source) of a data-only config; NaN and the reason when nothing could be built.

    Args:
        cfg: The run's ``config.json`` (a dict; config text is refused).
        task: ``'det'`` or ``'seg'`` (chooses the registry when the config has no default_scope).
    """
    if not isinstance(cfg, dict):
        return math.nan, 'not available (config text is never executed; a data-only config dict is needed)'
    return _model_size(_key(cfg), task)


@lru_cache(maxsize=64)
def _model_size(key: str, task: str | None) -> tuple[float, str]:
    cfg = json.loads(key)
    try:
        return count_params(_build_full(cfg, task)) / 1e6, 'whole model built from the run config'
    except Exception as e_full:  # noqa: BLE001 -- reported, not raised
        reason_full = f'{type(e_full).__name__}: {str(e_full).splitlines()[0] if str(e_full) else ""}'
    try:
        return (count_params(_build_backbone(cfg)) / 1e6,
                f'BACKBONE ONLY via adapter.build_backbone (whole model failed: {reason_full})')
    except Exception as e_bb:  # noqa: BLE001
        reason_bb = f'{type(e_bb).__name__}: {str(e_bb).splitlines()[0] if str(e_bb) else ""}'
    return math.nan, f'not available (whole model: {reason_full}; backbone: {reason_bb})'


def run_model_size(config: dict | None, task: str | None, label: str, warn: list[str]) -> tuple[float, str]:
    """#Param of a run from its data-only config; appends a warning when unavailable or backbone-only."""
    if not isinstance(config, dict):
        warn.append(f'{label}: #Param {NO_CONFIG}; shown as -')
        return math.nan, NO_CONFIG
    params, source = model_size_from_config(config, task)
    if math.isnan(params) or source.startswith('BACKBONE'):
        warn.append(f'{label}: #Param {source}')
    return params, source


def backbone_gmacs(cfg: dict, size: int) -> tuple[float, str]:
    """Backbone GMACs of one forward at ``size x size`` (``adapter.flops.backbone_flops``: dense ops
    counted by torch's FlopCounterMode plus the deformable sampling); NaN and the reason on failure.

    Built from the run's data-only config (a dict). This is the backbone alone at the given size, not the paper's
    whole-model FLOPs at its input size: compare ratios between rows, not values with the paper.
    """
    if not isinstance(cfg, dict):
        return math.nan, 'backbone GMACs not available (no data-only config; config text is never executed)'
    return _gmacs(_key(cfg), size)


@lru_cache(maxsize=64)
def _gmacs(key: str, size: int) -> tuple[float, str]:
    try:
        from adapter.flops import backbone_flops  # noqa: PLC0415

        from analysis.features import backbone_cfg, build_backbone  # noqa: PLC0415
        bb = backbone_cfg(json.loads(key))
        _check_types(bb, 'model.backbone')
        model = build_backbone(bb)
        return backbone_flops(model, (size, size))['total'], f'backbone GMACs at {size}x{size} (adapter.flops)'
    except Exception as e:  # noqa: BLE001 -- reported, not raised
        return math.nan, f'backbone GMACs not available ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})'

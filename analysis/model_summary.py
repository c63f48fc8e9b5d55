"""Model size (#Param) of a run, rebuilt from the config text stored in its manifest.

The paper's #Param counts the whole detector/segmentor, so we first build the whole model through the
task's registry (mmdet or mmseg, with the config's ``custom_imports``) on the ``meta`` device (no
memory, no weights); if that fails we build the backbone alone with ``adapter.build_backbone`` and
say so. Any failure is returned as a reason, never raised: the table then shows '-'.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import math
from functools import lru_cache

import torch


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) of a module."""
    return sum(p.numel() for p in module.parameters())


def _build_full(config_text: str, task: str | None) -> torch.nn.Module:
    from mmengine.config import Config  # noqa: PLC0415
    from mmengine.utils import import_modules_from_strings  # noqa: PLC0415

    from experiments.models import SCOPES, build_model  # noqa: PLC0415

    cfg = Config.fromstring(config_text, '.py')
    scope = cfg.get('default_scope') or SCOPES.get(task or '', 'mmdet')
    tasks = {v: k for k, v in SCOPES.items()}
    if scope not in tasks:
        raise ValueError(f'default_scope {scope!r} is neither mmdet nor mmseg')
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    model_cfg = cfg.model.to_dict()
    for k in ('pretrained', 'init_cfg'):
        model_cfg.pop(k, None)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_model(tasks[scope], model_cfg, device='meta')
        except Exception:  # noqa: BLE001 -- some modules compute on tensors at build time; retry on CPU
            return build_model(tasks[scope], model_cfg, device='cpu')


def _build_backbone(config_text: str) -> torch.nn.Module:
    from mmengine.config import Config  # noqa: PLC0415

    adapter = importlib.import_module('adapter')
    if not hasattr(adapter, 'build_backbone'):
        raise ImportError('adapter.build_backbone is not available')
    cfg = Config.fromstring(config_text, '.py')
    bb = cfg.model.backbone.to_dict() if hasattr(cfg.model.backbone, 'to_dict') else dict(cfg.model.backbone)
    bb.pop('_delete_', None)
    bb['pretrained'] = None
    bb.pop('init_cfg', None)
    with torch.device('meta'):
        return adapter.build_backbone(bb)


@lru_cache(maxsize=64)
def model_size_from_config(config_text: str, task: str | None) -> tuple[float, str]:
    """(#Param in millions, source) of a config; NaN and the reason when nothing could be built.

    Args:
        config_text: Full mmengine config text (``manifest['config']``).
        task: ``'det'`` or ``'seg'`` (chooses the registry when the config has no default_scope).
    """
    try:
        return count_params(_build_full(config_text, task)) / 1e6, 'whole model built from the run config'
    except Exception as e_full:  # noqa: BLE001 -- reported, not raised
        reason_full = f'{type(e_full).__name__}: {str(e_full).splitlines()[0] if str(e_full) else ""}'
    try:
        return (count_params(_build_backbone(config_text)) / 1e6,
                f'BACKBONE ONLY via adapter.build_backbone (whole model failed: {reason_full})')
    except Exception as e_bb:  # noqa: BLE001
        reason_bb = f'{type(e_bb).__name__}: {str(e_bb).splitlines()[0] if str(e_bb) else ""}'
    return math.nan, f'not available (whole model: {reason_full}; backbone: {reason_bb})'


def run_model_size(manifest: dict, label: str, warn: list[str]) -> tuple[float, str]:
    """#Param of a run from its manifest; appends a warning when unavailable or backbone-only."""
    text = manifest.get('config')
    if not isinstance(text, str) or not text.strip():
        warn.append(f'{label}: manifest has no config text; #Param shown as -')
        return math.nan, 'not available (no config text in the manifest)'
    params, source = model_size_from_config(text, manifest.get('task'))
    if math.isnan(params) or source.startswith('BACKBONE'):
        warn.append(f'{label}: #Param {source}')
    return params, source


@lru_cache(maxsize=64)
def backbone_gmacs(config_text: str, size: int) -> tuple[float, str]:
    """Backbone GMACs of one forward at ``size x size`` (``adapter.flops.backbone_flops``: dense ops
    counted by torch's FlopCounterMode plus the deformable sampling); NaN and the reason on failure.

    This is the backbone alone at the given size, not the paper's whole-model FLOPs at its input size:
    compare ratios between rows, not values with the paper.
    """
    try:
        from adapter.flops import backbone_flops  # noqa: PLC0415

        from analysis.features import backbone_cfg, build_backbone  # noqa: PLC0415
        model = build_backbone(backbone_cfg(config_text))
        return backbone_flops(model, (size, size))['total'], f'backbone GMACs at {size}x{size} (adapter.flops)'
    except Exception as e:  # noqa: BLE001 -- reported, not raised
        return math.nan, f'backbone GMACs not available ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})'

"""Mixed precision of the paper configs: AMP bf16 by default (as ViTDet), plain fp32 where there is no GPU.

The paper configs (``configs/_base_/{maskrcnn,upernet,semfpn}_vit_adapter.py``) train under mmengine's
``AmpOptimWrapper`` with ``dtype='bfloat16'``: the forward runs in ``torch.autocast(bfloat16)`` (matmuls, convs and
the deformable attention's values in bf16; its sampling locations and accumulation stay fp32, see ops/README.md),
weights, gradients and the optimiser state stay fp32. bf16 has fp32's exponent range, so no loss scaling is needed:
``loss_scale=1.0`` (a constant scale of 1; mmengine still skips a step whose gradients are not finite).
This departs from the official configs (fp32 training); ViTDet and mmdet 3.x's ViTDet configs train under AMP.

mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU, so the tiny (CPU) profile and CPU smoke runs use
the same optimiser as a plain fp32 ``OptimWrapper``:

- ``fp32_optim_wrapper(_base_.optim_wrapper, optimizer=dict(lr=4e-4))`` in a config file (the tiny configs);
- ``on_device(cfg, 'cpu')`` on a loaded config (``experiments.smoke``).

No mmengine import here (config files import this module).
"""
from __future__ import annotations

import copy

AMP_KEYS = ('dtype', 'loss_scale', 'use_fsdp')
PAPER_AMP = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=1.0)


def _plain(d):
    return d.to_dict() if hasattr(d, 'to_dict') else copy.deepcopy(dict(d))


def _merge(base: dict, delta: dict) -> dict:
    out = dict(base)
    for k, v in delta.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def fp32_optim_wrapper(base, **deltas) -> dict:
    """``base`` (an optim_wrapper dict, e.g. ``_base_.optim_wrapper``) as a plain fp32 ``OptimWrapper`` with
    ``deltas`` merged in (nested dicts merge key by key); replaces the base's dict (``_delete_=True``)."""
    cfg = {k: v for k, v in _plain(base).items() if k not in AMP_KEYS + ('type', '_delete_')}
    return dict(_delete_=True, type='OptimWrapper', **_merge(cfg, deltas))


def on_device(cfg, device: str):
    """Make a loaded mmengine ``Config`` trainable on ``device``: on a CPU an ``AmpOptimWrapper`` becomes the same
    optimiser as a plain fp32 ``OptimWrapper``. Returns a list of notes (what was changed)."""
    ow = cfg.get('optim_wrapper')
    if ow is None or ow.get('type') != 'AmpOptimWrapper' or str(device).startswith('cuda'):
        return []
    cfg.optim_wrapper = {k: v for k, v in _plain(ow).items() if k not in AMP_KEYS + ('type',)}
    cfg.optim_wrapper['type'] = 'OptimWrapper'
    return [f'{device}: AmpOptimWrapper(dtype={ow.get("dtype")}) -> fp32 OptimWrapper (mmengine\'s AMP wrapper '
            f'needs a GPU)']

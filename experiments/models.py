"""The paper's detectors and segmentors as model dicts, and building them through the mmdet / mmseg registries.

There is one copy of each model: its task ``_base_`` config in ``experiments/configs/_base_`` (Mask R-CNN,
UperNet, Semantic FPN). :func:`model_config` loads that file with mmengine's ``Config`` and puts another backbone
in, so a script or test that needs "Mask R-CNN around this backbone" gets what the configs train.

:func:`wire` derives the channels the backbone feeds from the backbone dict (the ViT width of its ``arch``
preset, or its ``embed_dim`` override): the neck's ``in_channels`` when the model has a neck, else the decode
and auxiliary heads'. The configs call it (the sizes live only in ``adapter.presets``), and the launcher calls
it again after command-line or grid overrides of the backbone.

mmdet / mmseg are imported inside the functions that build models.

Example::

    from experiments.models import build_model, model_config
    model = build_model('det', model_config('maskrcnn', dict(arch='B')), device='meta')
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional

import torch
from torch import nn

from adapter import OUT_STRIDES, get_preset

CONFIG_DIR = Path(__file__).resolve().parent / 'configs'
#: Model family -> (task, its task base config): the one copy of its neck, heads and train/test settings.
BASES = {'maskrcnn': ('det', '_base_/maskrcnn_vit_adapter.py'),
         'upernet': ('seg', '_base_/upernet_vit_adapter.py'),
         'semfpn': ('seg', '_base_/semfpn_vit_adapter.py')}
SCOPES = {'det': 'mmdet', 'seg': 'mmseg'}
#: Backbone types whose output channels :func:`wire` knows (other backbones keep the in_channels they are given).
ADAPTER_TYPES = ('ViTAdapter', 'ViTBaseline')


# ------------------------------------------------------------------------------------------------ wiring
def merge(base: Optional[Mapping], delta: Optional[Mapping]) -> dict:
    """``delta`` merged into ``base`` the way mmengine merges a child config into its base.

    Dicts merge key by key; a dict with ``_delete_=True`` replaces the base value; anything else replaces it.
    Neither argument is modified. Ours because mmengine 0.10.7 has no public function with these semantics:
    ``ConfigDict.merge`` keeps the ``_delete_`` marks of a delta's dicts that meet no base dict (a model built from
    the result would get them as arguments), and its config-file merge (``Config._merge_a_into_b``) is private.
    """
    if not isinstance(delta, Mapping):
        return copy.deepcopy(delta)
    delta = dict(delta)
    if delta.pop('_delete_', False) or not isinstance(base, Mapping):
        return {k: merge(None, v) if isinstance(v, Mapping) else copy.deepcopy(v) for k, v in delta.items()}
    out = {k: copy.deepcopy(v) for k, v in base.items()}
    for k, v in delta.items():
        out[k] = merge(out.get(k), v) if isinstance(v, Mapping) else copy.deepcopy(v)
    return out


def _plain(d):
    """A deep copy with every mapping a plain dict (``_delete_`` marks kept)."""
    if isinstance(d, Mapping):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return type(d)(_plain(v) for v in d)
    return copy.deepcopy(d)


def backbone_channels(backbone: Mapping) -> int:
    """Channels of every output map of a ``ViTAdapter`` / ``ViTBaseline`` dict: the ViT width.

    ``embed_dim`` when the dict overrides it, else the width of its ``arch`` preset (default 'S', as in
    ``adapter.ViTAdapter``).
    """
    if backbone.get('embed_dim') is not None:
        return int(backbone['embed_dim'])
    return int(get_preset(backbone.get('arch', 'S'))['embed_dim'])


def _head_channels(head: Mapping, c: int):
    index = head.get('in_index', -1)
    if 'in_index' not in head and isinstance(head.get('in_channels'), (list, tuple)):
        return [c] * len(head['in_channels'])  # a head that reads every level without in_index (Mask2Former)
    return [c] * len(index) if isinstance(index, (list, tuple)) else c


def wire(base: Optional[Mapping] = None, **model) -> dict:
    """``model`` (a model dict or a config's delta on ``base``) with the ``in_channels`` its backbone feeds.

    The backbone is ``base['backbone']`` merged with ``model['backbone']``. It outputs ``len(OUT_STRIDES)`` maps of
    C channels (:func:`backbone_channels`); whatever reads them gets C: the neck when the merged model has one
    (``[C] * 4``), else the decode head (``[C] * len(in_index)``) and the auxiliary head (C when it reads one
    level). The ``in_channels`` computed here replace any given ones. A backbone of another type (not in
    :data:`ADAPTER_TYPES`) leaves the model as given. In a config, after ``_base_``::

        from experiments.models import wire
        model = wire(_base_.model, backbone=dict(arch='B', pretrained='pretrained/deit_base_patch16_224.pth'))

    Args:
        base: The base config's model (``_base_.model``), or None when ``model`` is complete.
        model: The model dict, or its delta on ``base``.

    Returns:
        ``model`` (a new dict) with the consumers' ``in_channels`` set; merging it into ``base`` gives the model.
    """
    out = _plain(model)  # a delta: its _delete_ marks stay for mmengine's merge
    full = merge(base, model)
    if 'backbone' not in full:
        raise ValueError('wire: the model has no backbone')
    if full['backbone'].get('type', ADAPTER_TYPES[0]) not in ADAPTER_TYPES:
        return out
    c = backbone_channels(full['backbone'])
    if full.get('neck') is not None:
        neck = full['neck']
        if isinstance(neck, (list, tuple)):  # a chain of necks that keep the channels (HTC++: ExtraAttention, FPN)
            out['neck'] = [dict(_plain(n), in_channels=[c] * len(OUT_STRIDES)) for n in neck]
            return out
        if not isinstance(neck, Mapping):
            raise ValueError(f'wire: expected one neck dict, got {type(neck).__name__}')
        out.setdefault('neck', {})['in_channels'] = [c] * len(OUT_STRIDES)
        return out
    for key in ('decode_head', 'auxiliary_head'):
        if full.get(key) is not None:
            out.setdefault(key, {})['in_channels'] = _head_channels(full[key], c)
    return out


def rewire(model: Mapping) -> dict:
    """A complete model dict with the in_channels its backbone feeds recomputed (after overrides)."""
    return merge(model, wire(None, **model))


# --------------------------------------------------------------------------------------------- the models
@lru_cache(maxsize=None)
def _base_model(name: str) -> dict:
    from mmengine.config import Config  # noqa: PLC0415
    if name not in BASES:
        raise ValueError(f'unknown model {name!r}; choose one of {sorted(BASES)}')
    return Config.fromfile(str(CONFIG_DIR / BASES[name][1]), import_custom_modules=False).to_dict()['model']


def model_config(name: str, backbone: Optional[Mapping] = None, **updates) -> dict:
    """The model dict of a task base config with another backbone, wired to it.

    Args:
        name: 'maskrcnn' | 'upernet' | 'semfpn' (see :data:`BASES`).
        backbone: Merged into the config's backbone (``_delete_=True`` replaces it), e.g. ``dict(arch='B')``.
        updates: Other model fields merged in the same way, e.g. ``decode_head=dict(num_classes=5)``.

    Returns:
        A plain dict for :func:`build_model` (the in_channels follow the backbone, see :func:`wire`).
    """
    delta = dict(updates)
    if backbone is not None:
        delta['backbone'] = backbone
    return rewire(merge(_base_model(name), delta))


def load_config(path, overrides: Optional[Mapping] = None):
    """An mmengine ``Config`` from a file, with cfg-options ``overrides`` merged and its model rewired.

    What the launcher does to a run's config (without the run's own settings): a backbone override such as
    ``model.backbone.embed_dim`` reaches the neck / heads through :func:`rewire`.
    """
    from mmengine.config import Config  # noqa: PLC0415
    cfg = Config.fromfile(str(path), import_custom_modules=False)
    if overrides:
        cfg.merge_from_dict(dict(overrides))
    cfg.model = rewire(cfg.model.to_dict())
    return cfg


def task_of(name: str) -> str:
    """'det' or 'seg' for a model family of :data:`BASES`."""
    return BASES[name][0]


def registry(task: str):
    """The ``MODELS`` registry of 'det' (mmdet) or 'seg' (mmseg), with the adapter shims and every mm module."""
    if task == 'det':
        import experiments.shims.mmdet_adapter  # noqa: F401, PLC0415
        from mmdet.registry import MODELS  # noqa: PLC0415
        from mmdet.utils import register_all_modules  # noqa: PLC0415
    elif task == 'seg':
        import experiments.shims.mmseg_adapter  # noqa: F401, PLC0415
        from mmseg.registry import MODELS  # noqa: PLC0415
        from mmseg.utils import register_all_modules  # noqa: PLC0415
    else:
        raise ValueError(f"task must be 'det' or 'seg', got {task!r}")
    register_all_modules(init_default_scope=False)
    return MODELS


def build_model(task: str, model: Mapping, device: str = 'cpu') -> nn.Module:
    """Build an mmdet ('det') or mmseg ('seg') model from a model dict through the task's registry.

    ``device='meta'`` builds real modules without memory (for counting the parameters of large models). The
    backbone's ``pretrained`` checkpoint is not read here (it loads in ``init_weights``).
    """
    from mmengine.config import ConfigDict  # noqa: PLC0415
    from mmengine.registry import DefaultScope  # noqa: PLC0415
    reg = registry(task)
    ctx = torch.device(device) if device == 'meta' else contextlib.nullcontext()
    with ctx, DefaultScope.overwrite_default_scope(SCOPES[task]), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return reg.build(ConfigDict(copy.deepcopy(dict(model))))

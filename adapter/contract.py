"""What every backbone of this suite shares: the output contract (four maps at strides 4-32, ViT width, inputs
multiples of 32), the ViT built from the preset table, pre-trained loading and freezing.

References:
    detectron2 ``modeling/backbone/backbone.py`` (``output_shape`` / ``padding_constraints``). Written for this suite.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .presets import PRESET_FIELDS, get_preset
from .vit import VisionTransformer

SIZE_DIVISOR = 32
OUT_STRIDES = (4, 8, 16, 32)
# preset fields that describe the ViT (the rest describe the adapter)
VIT_FIELDS = ('embed_dim', 'depth', 'num_heads', 'drop_path_rate', 'pretrain_size')


def check_input_size(h: int, w: int, who: str = 'ViTAdapter') -> None:
    """Raise a clear error unless both sides are multiples of 32."""
    if h % SIZE_DIVISOR or w % SIZE_DIVISOR:
        ph, pw = math.ceil(h / SIZE_DIVISOR) * SIZE_DIVISOR, math.ceil(w / SIZE_DIVISOR) * SIZE_DIVISOR
        raise ValueError(f'{who}: input size {h}x{w} (HxW) is not a multiple of {SIZE_DIVISOR}; pad the image '
                         f'to {ph}x{pw} (mmdet/mmseg: data_preprocessor pad_size_divisor={SIZE_DIVISOR} / '
                         f'size_divisor={SIZE_DIVISOR}) or resize it')


def resolve_arch(who: str, arch: Union[str, dict], overrides: dict, allowed: Sequence[str] = PRESET_FIELDS) -> dict:
    """The preset of ``arch`` updated with keyword ``overrides``; a keyword that is not an ``allowed`` preset
    field is refused with the list of what is."""
    cfg = get_preset(arch)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise TypeError(f'{who} got unknown arguments {unknown}; preset fields that may be overridden: '
                        f'{tuple(allowed)}')
    cfg.update(overrides)
    return cfg


COMPILE_KEYS = ('mode', 'backend', 'fullgraph', 'dynamic', 'options')
_COMPILED: dict = {}


def check_compile(compile) -> Optional[dict]:
    """Normalise a backbone's ``compile`` argument: None/False -> None (eager), True -> {} (``torch.compile``
    defaults), a string -> ``{'mode': it}`` (what ``--cfg-options model.backbone.compile=reduce-overhead`` gives),
    a dict -> its ``torch.compile`` keyword arguments (``COMPILE_KEYS`` only)."""
    if compile is None or compile is False:
        return None
    if compile is True:
        return {}
    if isinstance(compile, str):
        modes = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
        if compile not in modes:
            raise ValueError(f'compile={compile!r}: not a torch.compile mode; choose one of {modes}, True, or a '
                             f'dict of torch.compile arguments {COMPILE_KEYS}')
        return {'mode': compile}
    if not isinstance(compile, dict):
        raise TypeError(f'compile must be None, a bool or a dict of torch.compile arguments {COMPILE_KEYS}, '
                        f'got {type(compile).__name__} {compile!r}')
    unknown = sorted(set(compile) - set(COMPILE_KEYS))
    if unknown:
        raise ValueError(f'compile: unknown torch.compile arguments {unknown}; allowed: {COMPILE_KEYS} '
                         f"(e.g. compile=dict(mode='max-autotune-no-cudagraphs'))")
    return dict(compile)


def _compiled_forward(cls: type, options: dict):
    """``torch.compile`` of ``cls._forward`` with ``options``, made once per (class, options).

    The compiled function is kept here, not on the module, so that a backbone stays picklable and deep-copyable
    (mmengine's EMA hooks copy the model); dynamo guards on the module it is called with.
    """
    key = (cls, repr(sorted(options.items())))
    fn = _COMPILED.get(key)
    if fn is None:
        fn = _COMPILED[key] = torch.compile(cls._forward, **options)
    return fn


class PyramidBackbone(nn.Module):
    """Base of ``ViTAdapter`` and ``ViTBaseline``: a ``VisionTransformer`` (``self.vit``) read out as a pyramid.

    Output contract: ``forward(x)`` with x (B, 3, H, W), H and W multiples of 32, returns four maps
    (B, C, H/4, W/4), (B, C, H/8, W/8), (B, C, H/16, W/16), (B, C, H/32, W/32), C = ViT width.
    """

    out_strides = OUT_STRIDES
    size_divisibility = SIZE_DIVISOR

    def _build_vit(self, cfg: dict, drop_path_rate: Optional[float], pretrain_size: Optional[int],
                   freeze_vit: bool, **vit_kwargs) -> None:
        self.cfg = cfg
        self.embed_dim = cfg['embed_dim']
        self.freeze_vit = freeze_vit
        self.vit = VisionTransformer(
            embed_dim=cfg['embed_dim'], depth=cfg['depth'], num_heads=cfg['num_heads'],
            drop_path_rate=cfg['drop_path_rate'] if drop_path_rate is None else drop_path_rate,
            pretrain_size=pretrain_size or cfg['pretrain_size'], **vit_kwargs)

    def _finish(self, pretrained: Optional[str], compile=None) -> None:
        self.compile_options = check_compile(compile)
        if pretrained:
            self.load_pretrained(pretrained)
        if self.freeze_vit:
            for p in self.vit.parameters():
                p.requires_grad_(False)

    @property
    def out_channels(self) -> List[int]:
        return [self.embed_dim] * 4

    def output_shape(self) -> Dict[str, Tuple[int, int]]:
        """Channels and stride per output level: {'p2'..'p5': (C, stride)}; inputs must be multiples of 32."""
        return {f'p{i + 2}': (self.embed_dim, s) for i, s in enumerate(OUT_STRIDES)}

    def load_pretrained(self, path_or_state, strict_shapes: bool = True):
        """Load a pre-trained ViT checkpoint into ``self.vit``; returns the ``LoadReport``."""
        from .checkpoint import load_pretrained
        return load_pretrained(self.vit, path_or_state, strict_shapes=strict_shapes)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_vit:
            self.vit.eval()
        return self

    def fuse_for_inference(self, enable: bool = True):
        """Switch on the inference-only rewrites (they act only under ``torch.no_grad()``): BatchNorm folded into
        the SPM convs, oneDNN's transposed conv in ``Upsample2x``. Off by default, so that validation runs the
        code that training runs; the outputs equal the plain path's to float rounding (tested). Returns self."""
        for m in self.modules():
            if hasattr(m, 'fuse_bn'):
                m.fuse_bn = enable
            if hasattr(m, 'use_onednn'):
                m.use_onednn = enable
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """x: (B, 3, H, W), H and W multiples of 32 -> 4 maps (B, C, H/s, W/s) for s in (4, 8, 16, 32).

        With ``compile`` set at construction, this runs ``torch.compile`` of the forward (compiled at the first
        call per input size; ``forward_intermediates`` stays eager).
        """
        options = getattr(self, 'compile_options', None)  # absent on modules pickled before it existed
        if options is None or torch.compiler.is_compiling():
            return tuple(self._forward(x, None))
        return tuple(_compiled_forward(type(self), options)(self, x, None))

    def forward_intermediates(self, x: torch.Tensor) -> Dict[str, object]:
        """Intermediate maps for analysis (no state is changed).

        Returns:
            dict(outs=[4 maps as ``forward``], stride8=(B, C, H/8, W/8) (the stride-8 output),
            vit_blocks=[per ViT block (B, C, H/16, W/16)]).
        """
        collect: list = []
        outs = self._forward(x, collect)
        hw = (x.shape[2] // self.vit.patch_size, x.shape[3] // self.vit.patch_size)
        return dict(outs=outs, stride8=outs[1], vit_blocks=[self.vit.to_map(t, hw) for t in collect])

    def _forward(self, x: torch.Tensor, collect: Optional[list]) -> List[torch.Tensor]:
        """The four output maps; appends every ViT block's output tokens to ``collect`` when given."""
        raise NotImplementedError

    def _check_input(self, x) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f'{type(self).__name__}: expected input (B, 3, H, W), got {tuple(x.shape)}')
        check_input_size(x.shape[2], x.shape[3], type(self).__name__)

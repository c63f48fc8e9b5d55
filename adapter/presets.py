"""The one table of ViT-Adapter sizes, and the even split of ViT blocks into interactions.

T/S/B/L: ViT-Adapter paper (Chen et al., ICLR 2023), Table 1 / Table 3 model sizes and the official configs
as transcribed in paper_tables.md "Architecture facts": width / depth / heads, adapter deformable heads,
deformable value ratio, drop-path rate, SPM conv_inplane 64, 4 sampling points, ConvFFN ratio 0.25.
``pretrain_size`` is the image side of the pre-trained position embedding (DeiT 224; AugReg-L 384).
'tiny' is not in the paper: a CPU-sized model for tests and smoke runs.
"""
from __future__ import annotations

from typing import Dict, List, Union

PRESET_FIELDS = ('embed_dim', 'depth', 'num_heads', 'deform_heads', 'deform_ratio', 'drop_path_rate',
                 'conv_inplane', 'n_points', 'cffn_ratio', 'pretrain_size')

#         embed_dim depth heads deform_heads deform_ratio drop_path conv_inplane n_points cffn pretrain
_TABLE = {
    'T':    (192,   12,    3,    6,           1.0,         0.1,      64,          4,       0.25, 224),
    'S':    (384,   12,    6,    6,           1.0,         0.2,      64,          4,       0.25, 224),
    'B':    (768,   12,   12,   12,           0.5,         0.3,      64,          4,       0.25, 224),
    'L':    (1024,  24,   16,   16,           0.5,         0.4,      64,          4,       0.25, 384),
    'tiny': (64,    12,    2,    2,           1.0,         0.0,      16,          4,       0.25, 224),
}
PRESETS: Dict[str, dict] = {k: dict(zip(PRESET_FIELDS, v)) for k, v in _TABLE.items()}


def get_preset(arch: Union[str, dict]) -> dict:
    """Preset fields for ``arch`` ('T' | 'S' | 'B' | 'L' | 'tiny'), or a dict of fields overriding the preset named
    by its 'base' entry (default 'S')."""
    if isinstance(arch, dict):
        arch = dict(arch)
        base = get_preset(arch.pop('base', 'S'))
        unknown = set(arch) - set(PRESET_FIELDS)
        if unknown:
            raise ValueError(f'unknown arch fields {sorted(unknown)}; allowed: {PRESET_FIELDS} (+ "base")')
        base.update(arch)
        return base
    if arch not in PRESETS:
        raise ValueError(f'unknown arch {arch!r}; choose one of {sorted(PRESETS)} or pass a dict of '
                         f'{PRESET_FIELDS}')
    return dict(PRESETS[arch])


def interaction_indexes(depth: int, n: int) -> List[List[int]]:
    """Split ``depth`` ViT blocks evenly into ``n`` interactions as inclusive [first, last] index pairs.

    >>> interaction_indexes(12, 4)
    [[0, 2], [3, 5], [6, 8], [9, 11]]
    """
    if n < 1 or n > depth:
        raise ValueError(f'n_interactions={n} must be between 1 and the ViT depth {depth} '
                         f'(0 means the plain-ViT baseline)')
    if depth % n:
        divisors = [d for d in range(1, depth + 1) if depth % d == 0]
        raise ValueError(f'n_interactions={n} does not divide the ViT depth {depth}; choose one of '
                         f'{[0] + divisors}')
    step = depth // n
    return [[i * step, (i + 1) * step - 1] for i in range(n)]

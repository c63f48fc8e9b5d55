"""Parameter counts of real mmdet / mmseg models around the adapter backbones vs the paper's #Param columns.

Models are built through the mmdet / mmseg registries (with the shims) on the meta device: real modules,
no memory, no init cost. Every paper number below is matched to +-0.1M (see adapter/README.md for the
definitions this needed: spm_injector, seg B pretrain_size, global/cswin/pale projections).
"""
import pytest
import torch

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from adapter.mmconfigs import maskrcnn_config, semfpn_config, upernet_config  # noqa: E402
from adapter.summary import build_mm_model  # noqa: E402


def _m(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


MASKRCNN = [  # (backbone kwargs, paper #Param, source)
    (dict(type='ViTAdapter', arch='T'), 28.1, 'T1'), (dict(type='ViTAdapter', arch='S'), 47.8, 'T1'),
    (dict(type='ViTAdapter', arch='B'), 120.2, 'T1'), (dict(type='ViTAdapter', arch='L'), 347.9, 'T1'),
    (dict(type='ViTBaseline', arch='T'), 26.1, 'T1'), (dict(type='ViTBaseline', arch='S'), 43.8, 'T1/A1/A2'),
    (dict(type='ViTBaseline', arch='L'), 337.3, 'T1'),
    (dict(type='ViTAdapter', arch='S', n_interactions=1), 45.5, 'A2'),
    (dict(type='ViTAdapter', arch='S', n_interactions=2), 46.2, 'A2'),
    (dict(type='ViTAdapter', arch='S', n_interactions=6), 49.4, 'A2'),
    (dict(type='ViTAdapter', arch='S', variant='spm_injector'), 46.6, 'A1'),
    (dict(type='ViTAdapter', arch='S', attn_type='global'), 50.3, 'A3'),
    (dict(type='ViTAdapter', arch='S', attn_type='cswin'), 50.3, 'A3'),
    (dict(type='ViTAdapter', arch='S', attn_type='pale'), 50.3, 'A3'),
]


@pytest.mark.parametrize('backbone, paper, source', MASKRCNN)
def test_maskrcnn_params_match_paper(backbone, paper, source):
    model = build_mm_model('det', maskrcnn_config(backbone), device='meta')
    assert type(model).__name__ == 'MaskRCNN'
    assert abs(_m(model) - paper) <= 0.1, f'{backbone}: {_m(model):.2f}M vs paper {paper}M ({source})'


SEG = [  # (arch, type, pretrain_size, UperNet, SemFPN) from table T4
    ('T', 'ViTAdapter', None, 36.1, 12.2), ('S', 'ViTAdapter', None, 57.6, 31.9),
    ('B', 'ViTAdapter', 384, 133.9, 104.6), ('L', 'ViTAdapter', None, 363.8, 332.0),
    ('T', 'ViTBaseline', None, 34.1, 10.2), ('S', 'ViTBaseline', None, 53.6, 27.8),
    ('B', 'ViTBaseline', 384, 127.3, 98.0),
]


@pytest.mark.parametrize('arch, kind, pretrain_size, upernet, semfpn', SEG)
def test_ade20k_params_match_paper(arch, kind, pretrain_size, upernet, semfpn):
    bb = dict(type=kind, arch=arch)
    if pretrain_size:
        bb['pretrain_size'] = pretrain_size
    up = build_mm_model('seg', upernet_config(bb), device='meta')
    fpn = build_mm_model('seg', semfpn_config(bb), device='meta')
    assert type(up.decode_head).__name__ == 'UPerHead' and type(fpn.decode_head).__name__ == 'FPNHead'
    assert abs(_m(up) - upernet) <= 0.1, f'{bb} UperNet {_m(up):.2f}M vs paper {upernet}M'
    assert abs(_m(fpn) - semfpn) <= 0.1, f'{bb} SemFPN {_m(fpn):.2f}M vs paper {semfpn}M'


def test_spm_add_count_is_pinned():
    """The paper gives variant 1 ('Add') no count; pin ours (ViT-S + SPM + 4 gammas + up + norms + Mask R-CNN)."""
    model = build_mm_model('det', maskrcnn_config(dict(type='ViTAdapter', arch='S', variant='spm_add')),
                           device='meta')
    assert sum(p.numel() for p in model.parameters()) == 43_875_248  # incl. layer scale (2 x 384 x 12)


def test_meta_build_equals_cpu_build():
    bb = dict(type='ViTAdapter', arch='tiny')
    a = build_mm_model('det', maskrcnn_config(bb), device='meta')
    b = build_mm_model('det', maskrcnn_config(bb), device='cpu')
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
    assert next(b.parameters()).device == torch.device('cpu')

"""The FLOP counter counts what its docstring says (dense ops incl. CPU SDPA, plus deformable sampling)."""
from adapter import ViTAdapter
from adapter.flops import backbone_flops
from adapter.vit import VisionTransformer


def test_vit_flops_are_the_analytic_macs():
    n, c = 16, 64                      # 64x64 input -> 4x4 tokens, width 64, 2 heads of 32
    per_block = n * c * 3 * c + 2 * n * n * (32 + 32) + n * c * c + 2 * n * c * 4 * c
    expected = n * c * 3 * 16 * 16 + 2 * per_block
    got = backbone_flops(VisionTransformer(c, 2, 2), (64, 64))
    assert got['sampling'] == 0 and got['dense'] * 1e9 == expected


def test_deformable_sampling_is_counted():
    m = ViTAdapter('tiny')
    f = backbone_flops(m, (64, 64))
    d, heads, pts = 32, 2, 4
    lq_inj, lq_ext = 16, 64 + 16 + 4   # ViT tokens; SPM tokens at 1/8, 1/16, 1/32
    expected = (4 * lq_inj * heads * 3 * pts + 6 * lq_ext * heads * 1 * pts) * 5 * d
    assert f['sampling'] * 1e9 == expected
    assert backbone_flops(ViTAdapter('tiny', attn_type='global'), (64, 64))['sampling'] == 0

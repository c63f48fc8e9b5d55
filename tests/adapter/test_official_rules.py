"""The rules of the official ViT-Adapter code (czczup/ViT-Adapter) that a near relative would miss.

Each test computes the official rule directly (written out here from its description, not imported) and checks
the backbone against it, or checks a structural fact; each fails on the suite's behaviour before it matched the
official code (feature rule, window padding, layer scale, extra-extractor drop path).
"""
import math

import pytest
import torch
import torch.nn.functional as F

from adapter import ViTAdapter
from adapter.vit import Attention, VisionTransformer


def _identity_norms(m: ViTAdapter) -> None:
    """Output BatchNorms in eval mode that compute the identity (mean 0, var 1 - eps, weight 1, bias 0)."""
    for n in m.norms:
        n.running_mean.zero_()
        n.running_var.fill_(1.0 - n.eps)
        n.weight.data.fill_(1.0)
        n.bias.data.zero_()


def _vit_contribution(source: str, n: int = 4):
    """(outputs with the ViT features) - (outputs without), and the per-block ViT maps, for a tiny model."""
    torch.manual_seed(0)
    kw = dict(arch='tiny', n_interactions=n, vit_feature_source=source, init_gamma=0.5)
    with_vit = ViTAdapter(add_vit_feature=True, **kw).double().eval()
    without = ViTAdapter(add_vit_feature=False, **kw).double().eval()
    without.load_state_dict(with_vit.state_dict())
    _identity_norms(with_vit)
    _identity_norms(without)
    x = torch.randn(1, 3, 96, 128, dtype=torch.float64)
    with torch.no_grad():
        inter = with_vit.forward_intermediates(x)
        diff = [a - b for a, b in zip(inter['outs'], without(x))]
    return diff, inter['vit_blocks']


def _resized(v: torch.Tensor, level: int) -> torch.Tensor:
    scale = (4, 2, 1, 0.5)[level]
    return v if scale == 1 else F.interpolate(v, scale_factor=scale, mode='bilinear', align_corners=False)


def test_detection_rule_adds_the_final_vit_tokens_to_every_level():
    """Official detection: the tokens after the last interaction, x4 / x2 / x1 / x0.5 bilinear, on all levels."""
    diff, blocks = _vit_contribution('final')
    for level in range(4):
        torch.testing.assert_close(diff[level], _resized(blocks[-1], level), rtol=1e-10, atol=1e-10)


def test_segmentation_rule_adds_each_interactions_tokens_to_its_level():
    """Official segmentation (N = 4): level i gets the tokens after interaction i (blocks 2, 5, 8, 11)."""
    diff, blocks = _vit_contribution('per_interaction')
    for level, last_block in enumerate((2, 5, 8, 11)):
        torch.testing.assert_close(diff[level], _resized(blocks[last_block], level), rtol=1e-10, atol=1e-10)
    # the rules differ on the 1/4, 1/8 and 1/16 levels (1/32 takes the final tokens in both)
    det, _ = _vit_contribution('final')
    for level in range(3):
        assert (det[level] - diff[level]).abs().max() > 1e-3


def test_feature_rule_is_refused_when_unknown():
    with pytest.raises(ValueError, match="vit_feature_source"):
        ViTAdapter('tiny', vit_feature_source='last')


def _official_window_attention(attn: Attention, x: torch.Tensor, hw) -> torch.Tensor:
    """The official rule written out: project q/k/v, zero-pad the (H, W, 3C) map to window multiples, softmax
    attention in each window over all its positions (padded keys/values are zero), crop, project."""
    b, n, c = x.shape
    h, w = hw
    ws, heads = attn.window_size, attn.num_heads
    d = c // heads
    hp, wp = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
    qkv_map = torch.zeros(b, hp, wp, 3 * c, dtype=x.dtype)
    qkv_map[:, :h, :w] = (x @ attn.qkv.weight.T + attn.qkv.bias).view(b, h, w, 3 * c)
    out = torch.zeros(b, hp, wp, c, dtype=x.dtype)
    for i0 in range(0, hp, ws):
        for j0 in range(0, wp, ws):
            win = qkv_map[:, i0:i0 + ws, j0:j0 + ws].reshape(b, ws * ws, 3, heads, d)
            q, k, v = win[:, :, 0], win[:, :, 1], win[:, :, 2]  # (b, N_, heads, d)
            logits = torch.einsum('bqhd,bkhd->bhqk', q, k) / math.sqrt(d)
            o = torch.einsum('bhqk,bkhd->bqhd', logits.softmax(-1), v).reshape(b, ws, ws, c)
            out[:, i0:i0 + ws, j0:j0 + ws] = o
    out = out[:, :h, :w].reshape(b, h * w, c)
    return out @ attn.proj.weight.T + attn.proj.bias


def test_window_attention_pads_the_projected_qkv_with_zeros():
    torch.manual_seed(1)
    attn = Attention(24, 3, window_size=4).double()
    torch.nn.init.normal_(attn.qkv.bias, std=1.0)  # a large qkv bias: padded tokens would carry it as keys
    hw = (5, 7)  # pads to 8 x 8
    x = torch.randn(2, hw[0] * hw[1], 24, dtype=torch.float64)
    official = _official_window_attention(attn, x, hw)
    torch.testing.assert_close(attn(x, hw), official, rtol=1e-12, atol=1e-12)
    # padding the tokens before the projection (padded keys = the qkv bias) is a different model
    pad_tokens = F.pad(x.view(2, *hw, 24), (0, 0, 0, 1, 0, 3)).view(2, 64, 24)
    whole = Attention(24, 3, window_size=4).double()
    whole.load_state_dict(attn.state_dict())
    other = whole(pad_tokens, (8, 8)).view(2, 8, 8, 24)[:, :5, :7].reshape(2, 35, 24)
    assert (other - official).abs().max() > 1e-3


def test_window_attention_without_padding_equals_the_official_rule():
    torch.manual_seed(2)
    attn = Attention(24, 3, window_size=4).double()
    x = torch.randn(1, 8 * 12, 24, dtype=torch.float64)
    torch.testing.assert_close(attn(x, (8, 12)), _official_window_attention(attn, x, (8, 12)),
                               rtol=1e-12, atol=1e-12)


def test_layer_scale_is_official_by_default_and_named_by_its_initial_value():
    m = ViTAdapter('tiny')
    gammas = [p for n, p in m.vit.named_parameters() if n.endswith(('ls1.gamma', 'ls2.gamma'))]
    assert len(gammas) == 2 * m.vit.depth
    assert all(torch.equal(g, torch.ones_like(g)) for g in gammas)
    m = ViTAdapter('tiny', layer_scale_init=1e-5)
    assert float(m.vit.blocks[3].ls2.gamma.detach()[0]) == pytest.approx(1e-5)
    assert not any('gamma' in n for n, _ in VisionTransformer(64, 4, 2, layer_scale_init=None).named_parameters())
    with pytest.raises(TypeError, match='layer_scale_init'):
        VisionTransformer(64, 4, 2, layer_scale_init=True)


def test_layer_scale_multiplies_both_branches():
    torch.manual_seed(3)
    vit = VisionTransformer(32, 2, 2, layer_scale_init=1.0).double().eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before = vit(x)
        for blk in vit.blocks:
            blk.ls1.gamma.zero_()
            blk.ls2.gamma.zero_()
        tokens, hw = vit.embed(x)
        torch.testing.assert_close(vit(x), vit.to_map(tokens, hw))  # zero gammas: the blocks are identities
    assert (before - vit(x)).abs().max() > 1e-3


@pytest.mark.parametrize('variant', ['full', 'spm_injector'])
def test_every_extractor_uses_the_backbone_drop_path_rate(variant):
    m = ViTAdapter('tiny', variant=variant, drop_path_rate=0.2)
    extractors = [blk.extractor for blk in m.interactions if blk.extractor is not None] + list(m.extra_extractors)
    assert len(m.extra_extractors) == 2
    assert [e.drop_path.p for e in extractors] == [0.2] * len(extractors)


@pytest.mark.parametrize('rate,depth', [(0.3, 24), (0.1, 12), (0.3, 8)])
def test_block_drop_path_rates_are_the_float32_linear_ramp(rate, depth):
    """The official ViT / BEiT build the ramp with torch.linspace(0, rate, depth) in float32 and read each step with
    .item(): every rate is a float32 number (0.3 * i / (depth - 1) in float64 mostly is not), the last one is
    float32(rate), and the steps are the linear ramp up to float32 rounding."""
    vit = VisionTransformer(32, depth, 2, drop_path_rate=rate)
    ps = [blk.drop_path.p for blk in vit.blocks]
    assert all(float(torch.tensor(p, dtype=torch.float32)) == p for p in ps)
    assert ps[0] == 0.0 and ps[-1] == float(torch.tensor(rate, dtype=torch.float32))
    assert ps == pytest.approx([rate * i / (depth - 1) for i in range(depth)], rel=1e-6, abs=0)


def test_position_embedding_resizes_in_its_own_precision():
    """The official code resizes pos_embed in the parameter's dtype: a float64 model stays float64 throughout."""
    from adapter.vit import resize_pos_embed
    torch.manual_seed(4)
    pe = torch.randn(1, 14 * 14, 8, dtype=torch.float64)
    grid = pe.reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(20, 30), mode='bicubic', align_corners=False).permute(0, 2, 3, 1).reshape(1, 600, 8)
    torch.testing.assert_close(resize_pos_embed(pe, (14, 14), (20, 30)), want, rtol=0, atol=0)


def test_beit_adapter_carries_the_class_token_through_the_vit_blocks_only():
    """The official BEiT-Adapter (``InteractionBlockWithCls``): the injector updates the patch tokens, the class token
    is put back in front for the ViT blocks and split off again, the extractors (and the two extra ones) read patch
    tokens only, and the class token carries over from one interaction to the next. With the injector gammas at 0
    the adapter's ViT therefore computes exactly the plain ViT with its class token."""
    torch.manual_seed(0)
    m = ViTAdapter(arch='tiny', rel_pos_bias=True, class_token=True, abs_pos_embed=False, qkv_bias='qv',
                   layer_scale_init=1e-6, init_gamma=1e-6, pretrain_size=96, vit_feature_source='per_interaction')
    m = m.double().eval()
    assert m.vit.pos_embed is None and m.vit.cls_token.shape == (1, 1, 64)
    assert all(blk.attn.rel_pos_cls.shape == (2, 3) and blk.attn.qkv.bias is None for blk in m.vit.blocks)
    with torch.no_grad():
        for blk in m.vit.blocks:
            blk.ls1.gamma.fill_(0.5)
            blk.ls2.gamma.fill_(0.5)
            blk.attn.rel_pos_cls.normal_()
    seen = []
    hooks = [mod.register_forward_pre_hook(lambda mod, args: seen.append((type(mod).__name__, args[0].shape[1],
                                                                          args[2].shape[1])))
             for mod in [b.injector for b in m.interactions] + [b.extractor for b in m.interactions]
             + list(m.extra_extractors)]
    x = torch.randn(1, 3, 96, 128, dtype=torch.float64)
    hw = 6 * 8
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()
    assert sorted(n for n, _, _ in seen) == ['Extractor'] * 6 + ['Injector'] * 4
    assert all(q == hw for n, q, _ in seen if n == 'Injector') and all(f == hw for n, _, f in seen if n == 'Extractor')
    with torch.no_grad():
        for b in m.interactions:
            b.injector.gamma.zero_()
        adapter_blocks = m.forward_intermediates(x)['vit_blocks']
        plain = m.vit.forward_intermediates(x)
        for a, b in zip(adapter_blocks, plain):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        before = m(x)[2].clone()
        m.vit.cls_token.add_(torch.randn_like(m.vit.cls_token))
        assert (m(x)[2] - before).abs().max() > 1e-6   # the class token takes part in the ViT attention

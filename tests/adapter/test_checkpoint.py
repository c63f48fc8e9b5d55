"""Every pre-trained checkpoint format, synthesised with its exact key layout and shapes (nothing downloaded)."""
import numpy as np
import pytest
import torch

from adapter import ViTAdapter
from adapter.checkpoint import detect_format, load_pretrained
from adapter.vit import VisionTransformer

C, DEPTH, HEADS, P = 32, 2, 2, 16


def _vit(**kw):
    torch.manual_seed(kw.pop('seed', 0))
    return VisionTransformer(C, DEPTH, HEADS, pretrain_size=64, **kw).eval()


def _same_output(a, b, size=(64, 96)):
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-5)


def _timm_sd(ref, n_prefix=1, head=True):
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    c = ref.embed_dim
    sd['pos_embed'] = torch.cat([torch.randn(1, n_prefix, c), sd['pos_embed']], 1)
    sd['cls_token'] = torch.randn(1, 1, c)
    if n_prefix == 2:
        sd['dist_token'] = torch.randn(1, 1, c)
        sd['head_dist.weight'], sd['head_dist.bias'] = torch.randn(10, c), torch.randn(10)
    sd['norm.weight'], sd['norm.bias'] = torch.ones(c), torch.zeros(c)
    if head:
        sd['head.weight'], sd['head.bias'] = torch.randn(10, c), torch.randn(10)
    return sd


@pytest.mark.parametrize('n_prefix', [1, 2])
def test_deit_pth(tmp_path, n_prefix):
    ref = _vit(seed=1)
    path = tmp_path / 'deit.pth'
    torch.save({'model': _timm_sd(ref, n_prefix)}, path)
    model = _vit(seed=2)
    rep = load_pretrained(model, str(path))
    assert rep.format == 'timm' and rep.missing == [] and rep.unexpected == []
    assert {'cls_token', 'head.weight', 'norm.weight'} <= set(rep.dropped)
    _same_output(ref, model)


def test_augreg_timm_pth_and_pos_embed_resize(tmp_path):
    """Converted AugReg .pth at top level, 384-px grid (24x24 here 8x8) resized to the model's 4x4 grid."""
    ref = VisionTransformer(C, DEPTH, HEADS, pretrain_size=128).eval()
    path = tmp_path / 'augreg.pth'
    torch.save(_timm_sd(ref), path)
    model = _vit()
    rep = load_pretrained(model, str(path))
    assert rep.format == 'timm' and not rep.missing and any('resized 8x8 -> 4x4' in n for n in rep.notes)
    grid = ref.pos_embed.reshape(1, 8, 8, C).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(4, 4), mode='bicubic', align_corners=False)
    expected = expected.permute(0, 2, 3, 1).reshape(1, 16, C)
    torch.testing.assert_close(model.pos_embed, expected)
    torch.testing.assert_close(model.blocks[1].mlp.fc2.weight, ref.blocks[1].mlp.fc2.weight)


def _augreg_npz(ref):
    sd, hd = ref.state_dict(), C // HEADS
    out = {'embedding/kernel': sd['patch_embed.proj.weight'].permute(2, 3, 1, 0),
           'embedding/bias': sd['patch_embed.proj.bias'], 'cls': torch.randn(1, 1, C),
           'Transformer/posembed_input/pos_embedding': torch.cat([torch.randn(1, 1, C), sd['pos_embed']], 1),
           'Transformer/encoder_norm/scale': torch.ones(C), 'Transformer/encoder_norm/bias': torch.zeros(C),
           'head/kernel': torch.randn(C, 10), 'head/bias': torch.zeros(10),
           'pre_logits/kernel': torch.randn(C, C), 'pre_logits/bias': torch.zeros(C)}
    for i in range(DEPTH):
        p, b = f'Transformer/encoderblock_{i}/', f'blocks.{i}.'
        wq, wk, wv = sd[b + 'attn.qkv.weight'].chunk(3)
        bq, bk, bv = sd[b + 'attn.qkv.bias'].chunk(3)
        for n, w, bias in (('query', wq, bq), ('key', wk, bk), ('value', wv, bv)):
            out[p + f'MultiHeadDotProductAttention_1/{n}/kernel'] = w.t().reshape(C, HEADS, hd)
            out[p + f'MultiHeadDotProductAttention_1/{n}/bias'] = bias.reshape(HEADS, hd)
        out[p + 'MultiHeadDotProductAttention_1/out/kernel'] = sd[b + 'attn.proj.weight'].t().reshape(HEADS, hd, C)
        out[p + 'MultiHeadDotProductAttention_1/out/bias'] = sd[b + 'attn.proj.bias']
        for src, dst in (('LayerNorm_0', 'norm1'), ('LayerNorm_2', 'norm2')):
            out[p + f'{src}/scale'], out[p + f'{src}/bias'] = sd[b + dst + '.weight'], sd[b + dst + '.bias']
        for src, dst in (('Dense_0', 'fc1'), ('Dense_1', 'fc2')):
            out[p + f'MlpBlock_3/{src}/kernel'] = sd[b + f'mlp.{dst}.weight'].t()
            out[p + f'MlpBlock_3/{src}/bias'] = sd[b + f'mlp.{dst}.bias']
    return {k: v.detach().numpy() for k, v in out.items()}


def test_augreg_jax_npz(tmp_path):
    ref = _vit(seed=3)
    path = tmp_path / 'augreg.npz'
    np.savez(path, **_augreg_npz(ref))
    model = _vit(seed=4)
    rep = load_pretrained(model, str(path))
    assert rep.format == 'augreg_npz' and rep.missing == [] and rep.unexpected == []
    assert {'cls', 'head/kernel', 'pre_logits/kernel', 'Transformer/encoder_norm/scale'} <= set(rep.dropped)
    _same_output(ref, model)


def _beit_sd(ref, shared=False, abs_pos=True):
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    out = {'cls_token': torch.randn(1, 1, C), 'patch_embed.proj.weight': sd['patch_embed.proj.weight'],
           'patch_embed.proj.bias': sd['patch_embed.proj.bias'], 'fc_norm.weight': torch.ones(C),
           'fc_norm.bias': torch.zeros(C), 'head.weight': torch.randn(10, C), 'head.bias': torch.zeros(10)}
    if abs_pos:
        out['pos_embed'] = torch.cat([torch.randn(1, 1, C), sd['pos_embed']], 1)
    for i in range(DEPTH):
        b = f'blocks.{i}.'
        q, k, v = sd[b + 'attn.qkv.bias'].chunk(3)
        out[b + 'attn.qkv.weight'] = sd[b + 'attn.qkv.weight']
        out[b + 'attn.q_bias'], out[b + 'attn.v_bias'] = q, v
        table = sd[b + 'attn.rel_pos_table']                       # (heads, 7, 7) for a 4x4 grid
        beit_table = torch.cat([table.flatten(1).t(), torch.randn(3, HEADS)])
        if shared:
            out['rel_pos_bias.relative_position_bias_table'] = beit_table
        else:
            out[b + 'attn.relative_position_bias_table'] = beit_table
            out[b + 'attn.relative_position_index'] = torch.zeros(17, 17, dtype=torch.long)
        out[b + 'gamma_1'], out[b + 'gamma_2'] = sd[b + 'ls1.gamma'], sd[b + 'ls2.gamma']
        for n in ('norm1', 'attn.proj', 'norm2', 'mlp.fc1', 'mlp.fc2'):
            out[b + n + '.weight'], out[b + n + '.bias'] = sd[b + n + '.weight'], sd[b + n + '.bias']
    return out


def _beit_ref(**kw):
    ref = _vit(seed=5, layer_scale_init=0.1, rel_pos_bias=True, **kw)
    with torch.no_grad():
        for blk in ref.blocks:
            blk.attn.qkv.bias[C:2 * C] = 0          # BEiT has no key bias
            blk.ls1.gamma.uniform_(0.05, 0.2)
            blk.attn.rel_pos_table.normal_()
    return ref


def test_beit_with_rel_pos_bias_and_layer_scale(tmp_path):
    ref = _beit_ref()
    path = tmp_path / 'beit.pth'
    torch.save({'model': _beit_sd(ref)}, path)
    model = _vit(seed=6, layer_scale_init=0.1, rel_pos_bias=True)
    rep = load_pretrained(model, str(path))
    assert rep.format == 'beit' and rep.missing == [] and rep.unexpected == []
    assert 'blocks.0.attn.relative_position_index' in rep.dropped
    _same_output(ref, model)


def test_beit_v2_shared_table_windowed_model_and_folded_layer_scale(tmp_path):
    """Shared table copied to every block; a model without layer scale gets gamma folded exactly."""
    ref = _beit_ref()
    with torch.no_grad():
        ref.blocks[1].attn.rel_pos_table.copy_(ref.blocks[0].attn.rel_pos_table)
    torch.save({'model': _beit_sd(ref, shared=True)}, tmp_path / 'beitv2.pth')
    model = _vit(seed=7, rel_pos_bias=True)
    rep = load_pretrained(model, str(tmp_path / 'beitv2.pth'))
    assert any('folded' in n for n in rep.notes) and any('shared' in n for n in rep.notes)
    assert rep.missing == [] and rep.unexpected == []
    _same_output(ref, model)
    # windowed blocks: the pre-training table is resized to the window
    win = _vit(seed=8, rel_pos_bias=True, window_attn=[True, False], window_size=2)
    rep = load_pretrained(win, str(tmp_path / 'beitv2.pth'))
    assert win.blocks[0].attn.rel_pos_table.shape == (HEADS, 3, 3)
    assert any('blocks.0.attn.rel_pos_table resized' in n for n in rep.notes)


def test_beit_without_abs_pos_and_model_without_rel_pos_reports_and_warns(tmp_path):
    ref = _beit_ref()
    torch.save({'model': _beit_sd(ref, abs_pos=False)}, tmp_path / 'beit.pth')
    model = _vit(layer_scale_init=0.1)
    with pytest.warns(UserWarning, match='relative position bias tables dropped'):
        rep = load_pretrained(model, str(tmp_path / 'beit.pth'))
    assert rep.missing == ['pos_embed']
    assert 'blocks.0.attn.rel_pos_table' in rep.dropped  # (BEiT's relative_position_bias_table)


def test_uniperceiver(tmp_path):
    ref = _vit(seed=9, post_norm=True, embed_norm=True)
    sd = ref.state_dict()
    type_emb = torch.randn(1, C)
    out = {'visual_embed.patch_embed.proj.weight': sd['patch_embed.proj.weight'],
           'visual_embed.patch_embed.proj.bias': sd['patch_embed.proj.bias'] - type_emb[0],
           'visual_embed.patch_embed.pos_embed.weight': sd['pos_embed'][0],
           'visual_embed.embeddings_type.weight': type_emb,
           'visual_embed.embeddings_norm.weight': sd['embed_norm.weight'],
           'visual_embed.embeddings_norm.bias': sd['embed_norm.bias']}
    names = {'attention.output.dense': 'attn.proj', 'attention.output.LayerNorm': 'norm1',
             'intermediate.dense': 'mlp.fc1', 'output.dense': 'mlp.fc2', 'output.LayerNorm': 'norm2'}
    for i in range(DEPTH):
        for kind in ('weight', 'bias'):
            for n, w in zip(('query', 'key', 'value'), sd[f'blocks.{i}.attn.qkv.{kind}'].chunk(3)):
                out[f'layers.{i}.attention.self.{n}.{kind}'] = w
            for src, dst in names.items():
                out[f'layers.{i}.{src}.{kind}'] = sd[f'blocks.{i}.{dst}.{kind}']
    torch.save({'model': out}, tmp_path / 'uni.pth')
    model = _vit(seed=10, post_norm=True, embed_norm=True)
    rep = load_pretrained(model, str(tmp_path / 'uni.pth'))
    assert rep.format == 'uniperceiver' and rep.missing == [] and rep.unexpected == []
    _same_output(ref, model)
    with pytest.raises(ValueError, match='post_norm=True, embed_norm=True'):
        load_pretrained(_vit(), str(tmp_path / 'uni.pth'))


def test_checkpoint_that_does_not_fit_says_why(tmp_path):
    ref = VisionTransformer(48, DEPTH, HEADS, pretrain_size=64)
    torch.save({'model': _timm_sd(ref)}, tmp_path / 'wide.pth')
    with pytest.raises(ValueError, match='checkpoint width 48 != model width 32'):
        load_pretrained(_vit(), str(tmp_path / 'wide.pth'))
    deep = VisionTransformer(C, 3, HEADS, pretrain_size=64)
    torch.save({'model': _timm_sd(deep)}, tmp_path / 'deep.pth')
    with pytest.raises(ValueError, match='checkpoint depth 3 != model depth 2'):
        load_pretrained(_vit(), str(tmp_path / 'deep.pth'))
    with pytest.raises(ValueError, match='unrecognised checkpoint layout'):
        detect_format({'foo.weight': torch.zeros(1)})


def test_adapter_pretrained_argument_loads_into_the_vit(tmp_path):
    m = ViTAdapter('tiny')
    ref = VisionTransformer(64, 12, 2)
    torch.save({'model': _timm_sd(ref)}, tmp_path / 'deit_tiny.pth')
    loaded = ViTAdapter('tiny', pretrained=str(tmp_path / 'deit_tiny.pth'))
    torch.testing.assert_close(loaded.vit.blocks[11].attn.qkv.weight, ref.blocks[11].attn.qkv.weight)
    assert not torch.equal(m.vit.blocks[11].attn.qkv.weight, loaded.vit.blocks[11].attn.qkv.weight)

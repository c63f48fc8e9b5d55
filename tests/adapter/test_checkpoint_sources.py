"""DINOv2 (with / without registers, SwiGLU ViT-g) and MAE checkpoints: synthesised with the public key names and
shape relations (``data/pretrain_layouts.json``), loaded through ``adapter.checkpoint``, and checked against a
forward assembled by hand from the checkpoint's own tensors (the source models' computation)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adapter.checkpoint import convert_state_dict, detect_format, load_pretrained, resize_patch_kernel
from adapter.vit import VisionTransformer, resize_pos_embed

LAYOUTS = json.loads((Path(__file__).parent / 'data' / 'pretrain_layouts.json').read_text())
C, DEPTH, HEADS = 32, 2, 2


def _shapes(section: dict, **dims) -> dict:
    """{key: shape} of one layout section; shape entries are expressions of the dims (C, N, P, R, D, H)."""
    return {k: tuple(int(eval(e, {'__builtins__': {}}, dims)) for e in shape) for k, shape in section.items()}


def dinov2_layout(c, depth, ffn, registers, grid=37, patch=14, hidden=None) -> dict:
    spec = LAYOUTS['dinov2']
    dims = dict(C=c, N=grid * grid, P=patch, R=spec['registers'], H=hidden or 0)
    out = _shapes(spec['top'], **dims)
    if registers:
        out.update(_shapes(spec['registers_key'], **dims))
    block = _shapes(spec['block'], **dims) | _shapes(spec['mlp' if ffn == 'mlp' else 'swiglu'], **dims)
    for i in range(depth):
        out.update({f'blocks.{i}.{k}': s for k, s in block.items()})
    return out


def mae_layout(c, depth, patch=16, grid=14, decoder=None) -> dict:
    spec = LAYOUTS['mae']
    dims = dict(C=c, N=grid * grid, P=patch, D=decoder[0] if decoder else 0)
    out = _shapes(spec['top'], **dims)
    for i in range(depth):
        out.update({f'blocks.{i}.{k}': s for k, s in _shapes(spec['block'], **dims).items()})
    if decoder:
        out.update(_shapes(spec['decoder_top'], **dims))
        blk = _shapes(spec['block'], **dict(dims, C=decoder[0]))
        for i in range(decoder[1]):
            out.update({f'decoder_blocks.{i}.{k}': s for k, s in blk.items()})
    return out


def _random(layout: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in layout.items():
        if k.endswith('gamma'):
            sd[k] = torch.empty(shape, dtype=torch.float64).uniform_(0.1, 1.0, generator=g)
        elif k.endswith(('norm1.weight', 'norm2.weight')):
            sd[k] = 1 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            sd[k] = 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
    return sd


# --------------------------------------------------------------------------------- the forward, by hand
def _block(t, sd, b, heads):
    """One pre-norm block from checkpoint tensors (timm / DINOv2 names), with optional ls gammas and SwiGLU."""
    c = t.shape[-1]
    h = F.layer_norm(t, (c,), sd[b + 'norm1.weight'], sd[b + 'norm1.bias'], eps=1e-6)
    qkv = F.linear(h, sd[b + 'attn.qkv.weight'], sd[b + 'attn.qkv.bias'])
    q, k, v = qkv.reshape(t.shape[0], t.shape[1], 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    a = torch.softmax(q @ k.transpose(-2, -1) * (c // heads) ** -0.5, -1) @ v
    a = F.linear(a.transpose(1, 2).reshape(t.shape), sd[b + 'attn.proj.weight'], sd[b + 'attn.proj.bias'])
    t = t + a * sd.get(b + 'ls1.gamma', 1.0)
    h = F.layer_norm(t, (c,), sd[b + 'norm2.weight'], sd[b + 'norm2.bias'], eps=1e-6)
    if b + 'mlp.w12.weight' in sd:
        x1, x2 = F.linear(h, sd[b + 'mlp.w12.weight'], sd[b + 'mlp.w12.bias']).chunk(2, -1)
        m = F.linear(F.silu(x1) * x2, sd[b + 'mlp.w3.weight'], sd[b + 'mlp.w3.bias'])
    else:
        m = F.linear(F.gelu(F.linear(h, sd[b + 'mlp.fc1.weight'], sd[b + 'mlp.fc1.bias'])),
                     sd[b + 'mlp.fc2.weight'], sd[b + 'mlp.fc2.bias'])
    return t + m * sd.get(b + 'ls2.gamma', 1.0)


def reference(sd, x, heads, prefix=True, pos_grid=None):
    """The source model's forward on image x with the checkpoint's own kernel (stride = its patch): class token
    + pos_embed[:, 0], then registers (no position), then patches + pos_embed[:, 1:] (resized bicubically to
    ``pos_grid`` as the suite does); returns the patch tokens as a (B, C, h, w) map."""
    w = sd['patch_embed.proj.weight']
    t = F.conv2d(x, w, sd['patch_embed.proj.bias'], stride=w.shape[-1])
    hw = t.shape[2:]
    t = t.flatten(2).transpose(1, 2)
    pos = sd['pos_embed'][:, 1:]
    side = int(pos.shape[1] ** 0.5)
    t = t + resize_pos_embed(pos, (side, side), tuple(hw))
    pre = []
    if prefix:
        pre = [sd['cls_token'] + sd['pos_embed'][:, :1]] + ([sd['register_tokens']] if 'register_tokens' in sd else [])
    t = torch.cat([p.expand(t.shape[0], -1, -1) for p in pre] + [t], 1)
    depth = 1 + max(int(k.split('.')[1]) for k in sd if k.startswith('blocks.'))
    for i in range(depth):
        t = _block(t, sd, f'blocks.{i}.', heads)
    n = sum(p.shape[1] for p in pre)
    return t[:, n:].transpose(1, 2).reshape(t.shape[0], -1, *hw)


def upsample_patches(x, p_old, p_new):
    """Resize every p_old x p_old patch of x on its own (bilinear) to p_new x p_new: the input for which FlexiViT's
    PI-resized kernel reproduces the old patch embedding exactly."""
    b, c, h, w = x.shape
    gh, gw = h // p_old, w // p_old
    patches = x.reshape(b, c, gh, p_old, gw, p_old).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, p_old, p_old)
    up = F.interpolate(patches, size=(p_new, p_new), mode='bilinear', align_corners=False)
    return up.reshape(b, gh, gw, c, p_new, p_new).permute(0, 3, 1, 4, 2, 5).reshape(b, c, gh * p_new, gw * p_new)


def _suite_vit(ffn='mlp', prefix=(False, 0), pretrain_size=592, layer_scale=1.0, **kw):
    torch.manual_seed(0)
    return VisionTransformer(C, DEPTH, HEADS, patch_size=16, pretrain_size=pretrain_size, layer_scale_init=layer_scale,
                             ffn=ffn, class_token=prefix[0], num_register_tokens=prefix[1], **kw).double().eval()


# ------------------------------------------------------------------------------------------------ DINOv2
@pytest.mark.parametrize('arch', list(LAYOUTS['dinov2']['archs']))
@pytest.mark.parametrize('registers', [False, True])
def test_public_dinov2_layouts_map_onto_the_suite_vit(arch, registers):
    """Full-size S/B/L/g (+ registers) key sets and shapes, on the meta device: every key lands on a model key of the
    same shape (the 14x14 kernel aside, which the loader resizes), nothing unexpected, the rest is reported."""
    c, depth, heads, ffn = LAYOUTS['dinov2']['archs'][arch]
    r = LAYOUTS['dinov2']['registers'] if registers else 0
    with torch.device('meta'):
        model = VisionTransformer(c, depth, heads, patch_size=16, pretrain_size=592, layer_scale_init=1.0, ffn=ffn,
                                  class_token=True, num_register_tokens=r)
    hidden = model.blocks[0].mlp.w3.weight.shape[1] if ffn == 'swiglu' else None
    if ffn == 'swiglu':
        assert hidden == LAYOUTS['dinov2']['vitg14_swiglu_hidden']
    ckpt = {k: torch.empty(s, device='meta') for k, s in dinov2_layout(c, depth, ffn, registers, hidden=hidden).items()}
    assert detect_format(ckpt) == 'dinov2'
    sd, fmt, dropped, _ = convert_state_dict(ckpt)
    own = model.state_dict()
    assert set(sd) == set(own)
    assert {k for k in sd if sd[k].shape != own[k].shape} == {'patch_embed.proj.weight'}
    assert sd['patch_embed.proj.weight'].shape[2:] == (14, 14) and set(dropped) == {'mask_token', 'norm.weight',
                                                                                     'norm.bias'}


@pytest.mark.parametrize('ffn,registers', [('mlp', False), ('mlp', True), ('swiglu', True)])
def test_dinov2_forward_matches_the_hand_assembled_model(tmp_path, ffn, registers):
    """518 px, 37x37 grid + class token: the loaded 16-px ViT on the per-patch upsampled image (592 px) computes
    DINOv2's patch tokens (14-px kernel, class token, registers, gammas, SwiGLU) to float64 rounding."""
    hidden = 24 if ffn == 'swiglu' else None
    ckpt = _random(dinov2_layout(C, DEPTH, ffn, registers, hidden=hidden), seed=1)
    torch.save(ckpt, tmp_path / 'dinov2.pth')
    model = _suite_vit(ffn, (True, 4 if registers else 0))
    if ffn == 'swiglu':
        assert model.blocks[0].mlp.w3.weight.shape[1] != hidden   # built for ratio 4; the checkpoint says otherwise
        model = _suite_vit(ffn, (True, 4 if registers else 0), mlp_ratio=hidden * 3 / 2 / C)
    rep = load_pretrained(model, str(tmp_path / 'dinov2.pth'))
    assert rep.format == 'dinov2' and rep.missing == [] and rep.unexpected == []
    assert set(rep.dropped) == {'mask_token', 'norm.weight', 'norm.bias'}
    assert any('14x14 -> 16x16' in n for n in rep.notes)
    x = torch.randn(1, 3, 518, 518, dtype=torch.float64)
    with torch.no_grad():
        ours = model(upsample_patches(x, 14, 16))
        ref = reference(ckpt, x, HEADS)
    assert ours.shape == ref.shape == (1, C, 37, 37)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    # another input size: the 37x37 embedding is resized to 6x8 (bicubic) for both
    x = torch.randn(2, 3, 84, 112, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(upsample_patches(x, 14, 16)), reference(ckpt, x, HEADS), rtol=1e-9, atol=1e-9)


def test_dinov2_into_the_adapters_vit_drops_and_reports_class_and_register_tokens(tmp_path):
    """The adapter's ViT carries no prefix tokens: class and register tokens are dropped and reported, and the
    loaded ViT computes DINOv2's blocks on the patch tokens alone. Chunked keys (block_chunks > 0) load the same."""
    ckpt = _random(dinov2_layout(C, DEPTH, 'mlp', True), seed=2)
    model = _suite_vit()
    rep = load_pretrained(model, ckpt)
    assert rep.missing == [] and rep.unexpected == []
    assert set(rep.dropped) == {'cls_token', 'register_tokens', 'mask_token', 'norm.weight', 'norm.bias'}
    assert any('num_register_tokens' in n for n in rep.notes) and any('class_token=True' in n for n in rep.notes)
    x = torch.randn(1, 3, 70, 56, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(upsample_patches(x, 14, 16)), reference(ckpt, x, HEADS, prefix=False))
    chunked = {(f'blocks.{int(k.split(".")[1]) // 1}.' + k.split('.', 1)[1] if k.startswith('blocks.') else k): v
               for k, v in ckpt.items()}   # block_chunks=DEPTH: blocks.<chunk>.<block>.* with chunk == block
    other = _suite_vit()
    rep2 = load_pretrained(other, chunked)
    assert rep2.format == 'dinov2' and rep2.missing == [] and any('chunked' in n for n in rep2.notes)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(other.state_dict()[k], v)


def test_layer_scale_free_model_folds_dinov2_gammas_into_swiglu(tmp_path):
    ckpt = _random(dinov2_layout(C, DEPTH, 'swiglu', False, hidden=24), seed=3)
    model = _suite_vit('swiglu', layer_scale=None, mlp_ratio=24 * 3 / 2 / C)
    rep = load_pretrained(model, ckpt)
    assert rep.missing == [] and any('folded' in n for n in rep.notes)
    x = torch.randn(1, 3, 56, 56, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(upsample_patches(x, 14, 16)), reference(ckpt, x, HEADS, prefix=False))


def test_mismatched_ffn_and_prefix_options_say_what_to_build():
    ckpt = _random(dinov2_layout(C, DEPTH, 'swiglu', False, hidden=24), seed=4)
    with pytest.raises(ValueError, match="build the ViT with ffn='swiglu'"):
        load_pretrained(_suite_vit('mlp'), ckpt)
    with pytest.raises(ValueError, match="ffn='mlp'"):
        load_pretrained(_suite_vit('swiglu'), _random(dinov2_layout(C, DEPTH, 'mlp', False), seed=4))
    with pytest.raises(ValueError, match='global attention without relative position bias'):
        VisionTransformer(C, 8, HEADS, num_register_tokens=4, window_attn=True)
    with pytest.raises(ValueError, match='unknown ffn'):
        VisionTransformer(C, DEPTH, HEADS, ffn='geglu')


# --------------------------------------------------------------------------------------------------- MAE
@pytest.mark.parametrize('class_token', [False, True])
def test_mae_pretraining_state_with_decoder(class_token):
    """MAE's full pre-training state: decoder and mask token dropped and every one reported; the encoder's
    forward (class token with the zero sin-cos slot folded in when kept) matches the hand-assembled one."""
    lay = mae_layout(C, DEPTH, grid=4, decoder=(16, 2))
    ckpt = _random(lay, seed=5)
    ckpt['pos_embed'][:, :1] = 0   # MAE's sin-cos table has a zero class slot
    assert detect_format(ckpt) == 'mae'
    model = _suite_vit(prefix=(class_token, 0), pretrain_size=64)
    rep = load_pretrained(model, {'model': ckpt})
    decoder = {k for k in lay if k.startswith('decoder_')} | {'mask_token', 'norm.weight', 'norm.bias'}
    assert set(rep.dropped) == decoder | (set() if class_token else {'cls_token'})
    assert rep.missing == [] and rep.unexpected == [] and any('gammas not in the checkpoint' in n for n in rep.notes)
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(ckpt, x, HEADS, prefix=class_token))


def test_mae_encoder_only_release_and_huge_patch14(tmp_path):
    """The released encoder-only files have timm's layout (``norm`` present, or absent as after fine-tuning with
    fc_norm); MAE-H/14's kernel is PI-resized to 16 like DINOv2's."""
    lay = mae_layout(C, DEPTH, patch=14, grid=4)
    ckpt = _random(lay, seed=6)
    no_norm = {k: v for k, v in ckpt.items() if not k.startswith('norm.')}
    no_norm['fc_norm.weight'], no_norm['fc_norm.bias'] = torch.ones(C), torch.zeros(C)
    for sd in (ckpt, no_norm):
        model = _suite_vit(pretrain_size=64)
        rep = load_pretrained(model, {'model': sd})
        assert rep.format == 'timm' and rep.missing == [] and rep.unexpected == []
        assert any('14x14 -> 16x16' in n for n in rep.notes)
        x = torch.randn(1, 3, 56, 70, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(model(upsample_patches(x, 14, 16)), reference(sd, x, HEADS, prefix=False))


# ------------------------------------------------------------------------------------- patch kernel resize
def test_pi_resize_is_exact_on_upsampled_patches_and_least_squares_when_shrinking():
    torch.manual_seed(0)
    w = torch.randn(8, 3, 14, 14, dtype=torch.float64)
    x = torch.randn(4, 3, 14 * 3, 14 * 2, dtype=torch.float64)
    old = F.conv2d(x, w, stride=14)
    new = F.conv2d(upsample_patches(x, 14, 16), resize_patch_kernel(w, (16, 16)), stride=16)
    assert (new - old).abs().max() < 1e-10 * old.abs().max()
    # naive bilinear resize of the kernel itself is far off (the point of PI-resize)
    naive = F.interpolate(w, size=(16, 16), mode='bilinear', align_corners=False)
    naive_err = (F.conv2d(upsample_patches(x, 14, 16), naive, stride=16) - old).norm() / old.norm()
    assert naive_err > 0.1
    # 16 -> 14 (e.g. a DeiT kernel into a patch-14 ViT): the least-squares kernel, not exact
    w16 = torch.randn(8, 3, 16, 16, dtype=torch.float64)
    x16 = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    down = F.conv2d(upsample_patches(x16, 16, 14), resize_patch_kernel(w16, (14, 14)), stride=14)
    assert down.shape == (4, 8, 2, 2) and resize_patch_kernel(w16, (16, 16)) is w16


# ------------------------------------------------------------------------------------------------ EVA-02
EVA = LAYOUTS['eva02']


def eva02_layout(c, depth, heads, arch, release='pt', hidden=None, grid=None, rope_grid=None, patch=None) -> dict:
    """{key: shape} of an EVA-02 release (``EVA['releases']``): the Ti/S (fused qkv, w12) or B/L (q/k/v proj, w1 / w2 /
    ffn_ln) block layout of ``arch``, the RoPE tables in every block and at the top."""
    rel = EVA['releases'][release]
    g = rope_grid or rel['rope_grid']
    patch = patch or rel['patch']
    grid = grid or (14 if release == 'pt_p14to16' else rel['img_size'] // patch)
    dims = dict(C=c, N=grid * grid, P=patch, H=hidden or EVA['hidden'][arch], G=g, HD=c // heads,
                T=EVA['teacher_dim'], K=EVA['in21k_classes'])
    out = _shapes(EVA['top'], **dims) | _shapes(EVA[rel['top']], **dims)
    rope = {k: tuple(int(eval(e, {'__builtins__': {}}, dims)) for e in rel['rope_shape']) for k in EVA['rope']}
    out.update(rope)
    big = EVA['archs'][arch][3] == 'swiglu_ln'
    block = (_shapes(EVA['block'], **dims) | _shapes(EVA['attn_subln' if big else 'attn_fused'], **dims)
             | _shapes(EVA['swiglu_ln' if big else 'swiglu'], **dims))
    block.update({k: next(iter(rope.values())) for k in EVA['block_rope']})
    for i in range(depth):
        out.update({f'blocks.{i}.{k}': s for k, s in block.items()})
    return out


# -------------------------------------------------------------------------------------------------- BEiT
def beit_layout(c, depth, heads, grid, release='pt22k_ft22k', patch=16) -> dict:
    spec = LAYOUTS['beit']
    rel = spec['releases'][release]
    dims = dict(C=c, P=patch, G=grid, T=(2 * grid - 1) ** 2 + 3, I=grid * grid + 1, K=heads, V=rel['V'])
    out = _shapes(spec['top'], **dims)
    out.update(_shapes(spec['top_pretrained' if rel['shared'] else 'top_finetuned'], **dims))
    block = _shapes(spec['block'], **dims) | ({} if rel['shared'] else _shapes(spec['block_rel_pos'], **dims))
    for i in range(depth):
        out.update({f'blocks.{i}.{k}': s for k, s in block.items()})
    return out


def eva_rope_table(grid, head_dim, ref=16, theta=10000.0):
    """EVA-02's RoPE buffers written out as its code does (``rope.py::VisionRotaryEmbeddingFast``, dim = head_dim / 2):
    positions arange(grid) / grid * ref, 'lang' frequencies, each repeated for its channel pair, the row half then the
    column half. Returns (cos, sin), each (grid, grid, head_dim)."""
    dim = head_dim // 2
    freqs = 1.0 / theta ** (torch.arange(0, dim, 2)[:dim // 2].double() / dim)
    t = torch.arange(grid).double() / grid * ref
    f = torch.einsum('i,f->if', t, freqs).repeat_interleave(2, -1)
    ang = torch.cat([f[:, None, :].expand(grid, grid, -1), f[None, :, :].expand(grid, grid, -1)], -1)
    return ang.cos(), ang.sin()


def _eva_rotate(x, cos, sin):
    """EVA-02's ``t * cos + rotate_half(t) * sin`` with its interleaved rotate_half ((d r) -> (-x2, x1))."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    rot = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).reshape(x.shape)
    return x * cos + rot * sin


def _eva_attend(h, sd, b, heads, rope, n_prefix):
    """EVA-02's attention on normed tokens h (B, N, C): q = W_q h + q_bias, k = W_k h, v = W_v h + v_bias (B/L
    q/k/v projections, or the fused Ti/S qkv), RoPE on the tokens after the n_prefix first, softmax, proj."""
    c = h.shape[-1]
    if b + 'attn.q_proj.weight' in sd:
        w = torch.cat([sd[b + f'attn.{n}_proj.weight'] for n in 'qkv'])
    else:
        w = sd[b + 'attn.qkv.weight']
    bias = torch.cat([sd[b + 'attn.q_bias'], torch.zeros(c, dtype=h.dtype), sd[b + 'attn.v_bias']])
    q, k, v = F.linear(h, w, bias).reshape(h.shape[0], h.shape[1], 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    cos, sin = rope
    cos, sin = cos.reshape(-1, c // heads), sin.reshape(-1, c // heads)
    q = torch.cat([q[:, :, :n_prefix], _eva_rotate(q[:, :, n_prefix:], cos, sin)], 2)
    k = torch.cat([k[:, :, :n_prefix], _eva_rotate(k[:, :, n_prefix:], cos, sin)], 2)
    a = torch.softmax(q @ k.transpose(-2, -1) * (c // heads) ** -0.5, -1) @ v
    a = a.transpose(1, 2).reshape(h.shape)
    if b + 'attn.inner_attn_ln.weight' in sd:   # EVA-02-CLIP's sub-LN before the projection
        a = F.layer_norm(a, (c,), sd[b + 'attn.inner_attn_ln.weight'], sd[b + 'attn.inner_attn_ln.bias'], eps=1e-6)
    return F.linear(a, sd[b + 'attn.proj.weight'], sd[b + 'attn.proj.bias'])


def _eva_ffn(h, sd, b):
    """EVA-02's SwiGLU: silu(w1 h) * w2 h -> ffn_ln (B/L) -> w3; Ti/S: w12 packed [w1; w2], no ffn_ln."""
    if b + 'mlp.w1.weight' in sd:
        x1 = F.linear(h, sd[b + 'mlp.w1.weight'], sd[b + 'mlp.w1.bias'])
        x2 = F.linear(h, sd[b + 'mlp.w2.weight'], sd[b + 'mlp.w2.bias'])
    else:
        x1, x2 = F.linear(h, sd[b + 'mlp.w12.weight'], sd[b + 'mlp.w12.bias']).chunk(2, -1)
    m = F.silu(x1) * x2
    if b + 'mlp.ffn_ln.weight' in sd:
        m = F.layer_norm(m, m.shape[-1:], sd[b + 'mlp.ffn_ln.weight'], sd[b + 'mlp.ffn_ln.bias'], eps=1e-6)
    return F.linear(m, sd[b + 'mlp.w3.weight'], sd[b + 'mlp.w3.bias'])


def eva02_reference(sd, x, heads, cls=True, windows=None, ws=None):
    """EVA-02's forward from the checkpoint's own tensors on image x (stride = its kernel), patch tokens as a map.

    Global blocks: asuka's ``modeling_finetune`` with ``intp_freq`` (the class token in front, unrotated; RoPE over
    the square grid g rescaled to 16: ``ft_seq_len = g``). ``cls=False``: EVA-02's ViTDet backbone (no class token,
    the class slot of pos_embed dropped). ``windows`` (per-block flags, grid a multiple of ``ws``): windowed blocks
    attend inside ws x ws windows with ``rope_win`` (``ft_seq_len = ws``), the others over the grid (``rope_glb``).
    """
    w = sd['patch_embed.proj.weight']
    t = F.conv2d(x, w, sd['patch_embed.proj.bias'], stride=w.shape[-1])
    g = t.shape[2]
    assert t.shape[3] == g, 'EVA-02 builds square grids only'
    t = t.flatten(2).transpose(1, 2)
    pos = sd['pos_embed'][:, 1:]
    side = int(pos.shape[1] ** 0.5)
    t = t + resize_pos_embed(pos, (side, side), (g, g))
    if cls:
        t = torch.cat([(sd['cls_token'] + sd['pos_embed'][:, :1]).expand(t.shape[0], -1, -1), t], 1)
    c = t.shape[-1]
    hd = c // heads
    depth = 1 + max(int(k.split('.')[1]) for k in sd if k.startswith('blocks.'))
    for i in range(depth):
        b = f'blocks.{i}.'
        h = F.layer_norm(t, (c,), sd[b + 'norm1.weight'], sd[b + 'norm1.bias'], eps=1e-6)
        if windows and windows[i]:
            n = g // ws
            hw = h.reshape(-1, n, ws, n, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
            a = _eva_attend(hw, sd, b, heads, eva_rope_table(ws, hd), 0)
            a = a.reshape(-1, n, n, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(h.shape)
        else:
            a = _eva_attend(h, sd, b, heads, eva_rope_table(g, hd), 1 if cls else 0)
        t = t + a
        t = t + _eva_ffn(F.layer_norm(t, (c,), sd[b + 'norm2.weight'], sd[b + 'norm2.bias'], eps=1e-6), sd, b)
    t = t[:, 1:] if cls else t
    return t.transpose(1, 2).reshape(t.shape[0], c, g, g)


def _eva_checkpoint(arch='B', release='pt', c=C, heads=HEADS, depth=DEPTH, hidden=None, seed=11, **kw):
    """Random EVA-02 weights with the release's key names and shapes and its true RoPE tables."""
    hidden = hidden or int(c * 4 * 2 / 3)   # EVA-02's rule at this width
    ckpt = _random(eva02_layout(c, depth, heads, arch, release, hidden=hidden, **kw), seed)
    for k in [k for k in ckpt if k.endswith('.ffn_ln.weight')]:
        ckpt[k] = 1 + 0.1 * ckpt[k]
    rel = EVA['releases'][release]
    cos, sin = eva_rope_table(kw.get('rope_grid') or rel['rope_grid'], c // heads)
    for k in ckpt:
        if k.endswith('rope.freqs_cos') or k.endswith('rope.freqs_sin'):
            ckpt[k] = (cos if k.endswith('cos') else sin).reshape(ckpt[k].shape).float()
    return ckpt


def _eva_vit(ffn='swiglu_ln', mlp_ratio=4 * 2 / 3, heads=HEADS, c=C, class_token=True, pretrain_size=256,
             qkv_bias='qv', rope=True, rope_ref_grid=EVA['rope_ref_grid'], **kw):
    torch.manual_seed(0)
    return VisionTransformer(c, DEPTH, heads, patch_size=16, pretrain_size=pretrain_size, ffn=ffn, mlp_ratio=mlp_ratio,
                             qkv_bias=qkv_bias, rope=rope, rope_ref_grid=rope_ref_grid, class_token=class_token,
                             **kw).double().eval()


@pytest.mark.parametrize('release', list(EVA['releases']))
@pytest.mark.parametrize('arch', list(EVA['archs']))
def test_public_eva02_layouts_map_onto_the_suite_vit(arch, release):
    """Full-size Ti/S/B/L key sets and shapes of the MIM, p14to16 and IN-21K fine-tuned releases, on the meta device:
    every key lands on a model key of the same shape (the 14x14 kernel and a 32x32 / 14x14 grid aside, which the
    loader resizes), nothing unexpected; the RoPE tables are checked (head width) and dropped, with the heads."""
    c, depth, heads, ffn, ratio = EVA['archs'][arch]
    with torch.device('meta'):
        model = VisionTransformer(c, depth, heads, patch_size=16, pretrain_size=256, ffn=ffn, mlp_ratio=ratio,
                                  qkv_bias='qv', rope=True, rope_ref_grid=16, class_token=True)
    assert model.blocks[0].mlp.w3.weight.shape[1] == EVA['hidden'][arch]
    ckpt = {k: torch.empty(s, device='meta') for k, s in eva02_layout(c, depth, heads, arch, release).items()}
    assert detect_format(ckpt) == 'eva02'
    sd, _, dropped, _ = convert_state_dict(ckpt)
    rope = {k for k in ckpt if 'rope.' in k}
    top = set(_shapes(EVA[EVA['releases'][release]['top']], C=c, T=1, K=1))
    assert set(dropped) == rope | top and len(rope) == 2 + 2 * depth
    own = model.state_dict()
    # the converter's names: one attn.qkv.bias (zero k third) per block, split into q_bias / v_bias at load
    assert {k for k in sd if not k.startswith('__rope_check__/')} == {
        k.replace('q_bias', 'qkv.bias') for k in own if not k.endswith('v_bias')}
    resized = {'patch_embed.proj.weight'} if release != 'pt_p14to16' else set()
    resized |= {'pos_embed'} if release != 'pt' else set()
    assert {k for k in sd if k in own and sd[k].shape != own[k].shape} == resized
    rep = load_pretrained(model, ckpt)
    assert rep.format == 'eva02' and rep.missing == [] and rep.unexpected == []
    assert any('RoPE tables' in n for n in rep.notes)
    if arch in ('B', 'L'):
        with pytest.raises(ValueError, match=f'num_heads={heads}'):
            with torch.device('meta'):
                other = VisionTransformer(c, depth, heads // 2, patch_size=16, pretrain_size=256, ffn=ffn,
                                          mlp_ratio=ratio, qkv_bias='qv', rope=True, rope_ref_grid=16)
            load_pretrained(other, ckpt)


@pytest.mark.parametrize('arch,cls', [('B', True), ('B', False), ('S', True)])
def test_eva02_forward_matches_the_hand_assembled_model(tmp_path, arch, cls):
    """The MIM release (224 px / patch 14, 16x16 + class pos_embed, the DeepSpeed 'module' container) into a 16-px ViT
    on the per-patch upsampled image: the patch tokens of EVA-02's forward (q/v biases, RoPE on the patch tokens with
    the class token unrotated, SwiGLU with its LayerNorm; Ti/S: fused qkv and SwiGLU, no LayerNorm) to float64
    rounding, on the 16x16 grid of pre-training and on an 8x8 grid (RoPE rescaled to 16, pos_embed resized).
    Without a class token: EVA-02's detection backbone."""
    ffn, ratio = EVA['archs'][arch][3:]
    c, heads = (C, HEADS) if arch == 'B' else (48, 3)   # Ti/S: width 48 gives EVA's and DINOv2's hidden rule one width
    hidden = int(c * 4 * 2 / 3)
    ckpt = _eva_checkpoint(arch, c=c, heads=heads, hidden=hidden)
    torch.save({'module': ckpt, 'epoch': 149}, tmp_path / 'eva02.pt')
    model = _eva_vit(ffn, ratio, heads=heads, c=c, class_token=cls)
    assert model.blocks[0].mlp.w3.weight.shape[1] == hidden
    rep = load_pretrained(model, str(tmp_path / 'eva02.pt'))
    assert rep.format == 'eva02' and rep.missing == [] and rep.unexpected == []
    assert set(rep.dropped) >= {'mask_token', 'lm_head.weight', 'norm.weight', 'rope.freqs_cos'}
    assert ('cls_token' in rep.dropped) != cls and any('14x14 -> 16x16' in n for n in rep.notes)
    for size in (224, 112):
        x = torch.randn(1, 3, size, size, dtype=torch.float64)
        with torch.no_grad():
            ours = model(upsample_patches(x, 14, 16))
            ref = eva02_reference(ckpt, x, heads, cls=cls)
        assert ours.shape == ref.shape == (1, c, size // 14, size // 14)
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_eva02_window_blocks_rotate_over_the_window_grid():
    """The adapter's windowed ViT (windows in block 0, global block 1; 12x12 grid, 4x4 windows, no padding) computes
    EVA-02's ViTDet backbone: ``rope_win`` inside each window, ``rope_glb`` over the grid, no class token. The
    p14to16 release: its 16x16 kernel and 14x14 + class pos_embed need no kernel resize."""
    ckpt = _eva_checkpoint('B', 'pt_p14to16', seed=12)
    model = _eva_vit(class_token=False, window_attn=[True, False], window_size=4, pretrain_size=224)
    rep = load_pretrained(model, ckpt)
    assert rep.missing == [] and rep.unexpected == [] and not any('resized' in n for n in rep.notes)
    x = torch.randn(2, 3, 192, 192, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), eva02_reference(ckpt, x, HEADS, cls=False, windows=[True, False], ws=4),
                                   rtol=1e-9, atol=1e-9)
        # windowed RoPE is not global RoPE: the same weights attending over the whole grid give other tokens
        glob = eva02_reference(ckpt, x, HEADS, cls=False, windows=[False, False])
    assert (model(x) - glob).abs().max() > 1e-3


def test_eva02_in21k_finetuned_release_and_the_loaders_refusals():
    """The 448-px IN-21K fine-tuned release (32x32 grid, flat (1024, head width) RoPE tables rescaled to 16,
    fc_norm / head) loads and computes EVA-02; a model that would compute something else is refused, saying what to
    build: no RoPE, another reference grid, no inner LayerNorm in the FFN, the wrong hidden width."""
    ckpt = _eva_checkpoint('B', 'medft_in21k', grid=6, seed=13)   # a 6x6 pos_embed stands for the 32x32 one
    model = _eva_vit(pretrain_size=6 * 16)
    rep = load_pretrained(model, {'model': ckpt})
    assert rep.missing == [] and set(rep.dropped) >= {'fc_norm.weight', 'head.weight', 'head.bias'}
    x = torch.randn(1, 3, 140, 140, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(upsample_patches(x, 14, 16)), eva02_reference(ckpt, x, HEADS),
                                   rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match='rope=True, rope_ref_grid=16'):
        load_pretrained(_eva_vit(rope=False), ckpt)
    no_tables = {k: v for k, v in ckpt.items() if 'rope.' not in k}   # EVA-02 all the same: RoPE required
    with pytest.raises(ValueError, match='rope=True, rope_ref_grid=16'):
        load_pretrained(_eva_vit(rope=False), no_tables)
    assert any('not checked' in n for n in load_pretrained(_eva_vit(pretrain_size=6 * 16), no_tables).notes)
    with pytest.raises(ValueError, match='reference grid 16 for a 32-wide grid'):
        load_pretrained(_eva_vit(rope_ref_grid=14), ckpt)
    with pytest.raises(ValueError, match="ffn='swiglu_ln'"):
        load_pretrained(_eva_vit('swiglu'), ckpt)
    with pytest.raises(ValueError, match='mlp_ratio'):
        load_pretrained(_eva_vit(mlp_ratio=4.0), ckpt)


def test_qv_bias_and_full_bias_load_the_same_model():
    """qkv_bias='qv' keeps EVA-02's fixed zero k bias; qkv_bias=True takes the same weights with a zero k third and
    computes the same; a checkpoint with a k bias refuses to go into a 'qv' model with RoPE (which rotates k)."""
    ckpt = _eva_checkpoint('B', seed=14)
    qv, full = _eva_vit(), _eva_vit(qkv_bias=True)
    assert 'blocks.0.attn.q_bias' in qv.state_dict() and 'blocks.0.attn.qkv.bias' not in qv.state_dict()
    rep = load_pretrained(qv, ckpt)
    assert any("qkv_bias='qv'" in n for n in rep.notes)
    load_pretrained(full, ckpt)
    assert full.blocks[0].attn.qkv.bias[C:2 * C].abs().max() == 0
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(qv(x), full(x), rtol=1e-12, atol=1e-12)
    deit = {f'vit.{k}': v for k, v in full.state_dict().items()}
    deit['vit.blocks.0.attn.qkv.bias'] = torch.ones(3 * C, dtype=torch.float64)
    with pytest.raises(ValueError, match='qkv_bias=True'):
        load_pretrained(_eva_vit(), deit)


def test_attention_sub_ln_is_an_option_and_refused_when_missing():
    """``attn.inner_attn_ln`` (EVA-02-CLIP's LayerNorm of the attention output; not in the MIM / ImageNet releases)
    loads into ``attn_norm=True`` and computes the reference; a ViT without it is refused, saying what to build."""
    ckpt = _eva_checkpoint('B', seed=15)
    for i in range(DEPTH):
        ckpt[f'blocks.{i}.attn.inner_attn_ln.weight'] = 1 + 0.1 * torch.randn(C, dtype=torch.float64)
        ckpt[f'blocks.{i}.attn.inner_attn_ln.bias'] = 0.1 * torch.randn(C, dtype=torch.float64)
    model = _eva_vit(attn_norm=True)
    rep = load_pretrained(model, ckpt)
    assert rep.missing == [] and rep.unexpected == []
    x = torch.randn(1, 3, 112, 112, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(upsample_patches(x, 14, 16)), eva02_reference(ckpt, x, HEADS),
                                   rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match='attn_norm=True'):
        load_pretrained(_eva_vit(), ckpt)
def beit_index(g: int) -> torch.Tensor:
    """BEiT's relative_position_index for a g x g grid after a class token (as modeling_finetune builds it): grid
    pairs index (dy + g - 1) * (2g - 1) + (dx + g - 1); row 0 (class query) T-3, column 0 (class key) T-2, [0, 0]
    T-1, T the table's rows."""
    ys, xs = torch.meshgrid(torch.arange(g), torch.arange(g), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    t = (2 * g - 1) ** 2 + 3
    idx = torch.zeros(g * g + 1, g * g + 1, dtype=torch.long)
    idx[1:, 1:] = (ys[:, None] - ys[None, :] + g - 1) * (2 * g - 1) + (xs[:, None] - xs[None, :] + g - 1)
    idx[0, :], idx[:, 0], idx[0, 0] = t - 3, t - 2, t - 1
    return idx


def beit_reference(sd, x, heads, tables=None):
    """BEiT's forward from the checkpoint's tensors: patches, the class token in front (no position embedding),
    blocks with q / v biases, the per-block table gathered by ``beit_index`` (``tables`` replaces the checkpoint's,
    e.g. resized ones), gammas; returns the patch tokens as a (B, C, h, w) map."""
    w = sd['patch_embed.proj.weight']
    t = F.conv2d(x, w, sd['patch_embed.proj.bias'], stride=w.shape[-1])
    b, c, gh, gw = t.shape
    assert gh == gw
    idx = beit_index(gh)
    t = torch.cat([sd['cls_token'].expand(b, -1, -1), t.flatten(2).transpose(1, 2)], 1)
    n = t.shape[1]
    depth = 1 + max(int(k.split('.')[1]) for k in sd if k.startswith('blocks.'))
    for i in range(depth):
        p = f'blocks.{i}.'
        h = F.layer_norm(t, (c,), sd[p + 'norm1.weight'], sd[p + 'norm1.bias'], eps=1e-6)
        bias = torch.cat([sd[p + 'attn.q_bias'], torch.zeros_like(sd[p + 'attn.q_bias']), sd[p + 'attn.v_bias']])
        q, k, v = F.linear(h, sd[p + 'attn.qkv.weight'], bias).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        table = sd[p + 'attn.relative_position_bias_table'] if tables is None else tables[i]
        rel = table[idx.flatten()].reshape(n, n, heads).permute(2, 0, 1)
        a = torch.softmax(q @ k.transpose(-2, -1) * (c // heads) ** -0.5 + rel, -1) @ v
        a = F.linear(a.transpose(1, 2).reshape(b, n, c), sd[p + 'attn.proj.weight'], sd[p + 'attn.proj.bias'])
        t = t + sd[p + 'gamma_1'] * a
        h = F.layer_norm(t, (c,), sd[p + 'norm2.weight'], sd[p + 'norm2.bias'], eps=1e-6)
        m = F.linear(F.gelu(F.linear(h, sd[p + 'mlp.fc1.weight'], sd[p + 'mlp.fc1.bias'])),
                     sd[p + 'mlp.fc2.weight'], sd[p + 'mlp.fc2.bias'])
        t = t + sd[p + 'gamma_2'] * m
    return t[:, 1:].transpose(1, 2).reshape(b, c, gh, gw)


BEIT_VIT = dict(rel_pos_bias=True, class_token=True, abs_pos_embed=False, qkv_bias='qv', layer_scale_init=1e-6)


@pytest.mark.parametrize('release', list(LAYOUTS['beit']['releases']))
def test_public_beit_large_loads_strictly_into_the_beit_adapter_vit(release):
    """BEiT-L's full key set and shapes (meta device) into the ViT of the official BEiT-Adapter-L 896 config: every
    key has its place (q / v biases, gammas, the class token, per-block tables and their class entries), nothing is
    missing or unexpected; heads / norms / index buffers are dropped, and the 27x27 tables of the 224-px grid are
    resized to the 111x111 of 896 px."""
    c, depth, heads, patch = LAYOUTS['beit']['archs']['beit_large_patch16_224']
    grid = LAYOUTS['beit']['img_size'] // patch
    with torch.device('meta'):
        model = VisionTransformer(c, depth, heads, patch_size=patch, pretrain_size=896, **BEIT_VIT)
        ckpt = {k: torch.empty(s) for k, s in beit_layout(c, depth, heads, grid, release).items()}
    assert detect_format(ckpt) == 'beit'
    sd, _, _, _ = convert_state_dict(ckpt)
    own = model.state_dict()
    assert set(sd) == set(own) and 'pos_embed' not in own
    assert {k for k in sd if sd[k].shape != own[k].shape} == {f'blocks.{i}.attn.rel_pos_table' for i in range(depth)}
    assert own['blocks.0.attn.rel_pos_table'].shape == (heads, 111, 111) and sd['blocks.0.attn.rel_pos_table'].shape == \
        (heads, 27, 27) and sd['blocks.0.attn.rel_pos_cls'].shape == (heads, 3)
    rep = load_pretrained(model, ckpt)
    assert rep.format == 'beit' and rep.missing == [] and rep.unexpected == []
    top = set(_shapes(LAYOUTS['beit']['top_pretrained' if release == 'pt22k' else 'top_finetuned'], C=c, V=1, T=1,
                      I=1, K=1))
    assert set(rep.dropped) == (top if release == 'pt22k' else
                                top | {f'blocks.{i}.attn.relative_position_index' for i in range(depth)})
    assert sum(f'rel_pos_table resized ({heads}, 27, 27) -> ({heads}, 111, 111)' in n for n in rep.notes) == depth


def _beit_ckpt(grid, seed=11, release='pt22k_ft22k'):
    sd = _random(beit_layout(C, DEPTH, HEADS, grid, release), seed)
    for k in [k for k in sd if k.endswith('relative_position_index')]:
        sd[k] = beit_index(grid)
    return sd


def test_beit_forward_matches_the_hand_assembled_model():
    """The loaded ViT (class token with BEiT's class entries, q / v biases, gammas, no position embedding) computes
    BEiT's patch tokens to float64 rounding; the same ViT without a class token drops the class entries."""
    ckpt = _beit_ckpt(grid=4)
    model = _suite_vit(prefix=(True, 0), pretrain_size=64, layer_scale=1e-6, rel_pos_bias=True, abs_pos_embed=False,
                       qkv_bias='qv')
    rep = load_pretrained(model, {'model': ckpt})
    assert rep.missing == [] and rep.unexpected == [] and not any('resized' in n for n in rep.notes)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), beit_reference(ckpt, x, HEADS), rtol=1e-9, atol=1e-9)
    fused = _suite_vit(pretrain_size=64, layer_scale=1e-6, rel_pos_bias=True, abs_pos_embed=False)  # qkv_bias=True
    rep = load_pretrained(fused, ckpt)
    assert rep.missing == [] and {'cls_token', 'blocks.0.attn.rel_pos_cls'} <= set(rep.dropped)
    assert any('fused into attn.qkv.bias' in n for n in rep.notes)
    torch.testing.assert_close(fused.blocks[1].attn.qkv.bias.chunk(3)[1], torch.zeros(C, dtype=torch.float64))


def test_beit_tables_are_resized_as_the_official_loader():
    """A 4x4-grid checkpoint into a ViT for a 5x5 grid (tables 7x7 -> 9x9): every head is the interpolating
    bicubic spline through the entries at BEiT's geometric offsets (here recomputed as two 1-D not-a-knot splines,
    arguments clamped to the source range, as FITPACK); the class entries are kept; the forward at 80 px is BEiT's
    with those tables. BEiT-L 224 -> 896 (27 -> 111): offsets spread by q = 1.218 to +-55."""
    from scipy.interpolate import make_interp_spline

    from adapter.checkpoint import beit_offsets
    ckpt = _beit_ckpt(grid=4, seed=12)
    model = _suite_vit(prefix=(True, 0), pretrain_size=80, layer_scale=1e-6, rel_pos_bias=True, abs_pos_embed=False,
                       qkv_bias='qv')
    load_pretrained(model, ckpt)
    src, dst, q = beit_offsets(7, 9)
    assert q == pytest.approx((13 ** 0.5 - 1) / 2, abs=1e-6)  # 1 + q + q^2 = 4
    assert abs(src[-1] - 4) < 1e-5 and list(dst) == list(range(-4, 5))
    assert list(src[3:6]) == [0.0, 1.0, 1.0 + q]   # offsets 0 and 1 stay where they are
    x27, _, q27 = beit_offsets(27, 111)
    assert q27 == pytest.approx(1.21807, abs=1e-5) and x27[-1] == pytest.approx(55, abs=1e-3)
    tables = []
    for i in range(DEPTH):
        t = ckpt[f'blocks.{i}.attn.relative_position_bias_table']
        grid = t[:-3].t().reshape(HEADS, 7, 7).numpy()
        d = np.clip(dst, src[0], src[-1])
        want = make_interp_spline(src, make_interp_spline(src, grid, k=3, axis=2)(d), k=3, axis=1)(d)
        got = model.blocks[i].attn.rel_pos_table.detach()
        torch.testing.assert_close(got, torch.from_numpy(want), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(got[:, 3:6, 3:6], torch.from_numpy(grid[:, 2:5, 2:5]))  # knots: offsets 0, +-1
        torch.testing.assert_close(model.blocks[i].attn.rel_pos_cls.detach(), t[-3:].t())
        tables.append(torch.cat([got.flatten(1).t(), t[-3:]]))
    x = torch.randn(1, 3, 80, 80, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), beit_reference(ckpt, x, HEADS, tables), rtol=1e-9, atol=1e-9)


def test_fused_qkv_bias_into_a_qv_vit_drops_only_the_k_bias():
    """A timm checkpoint (fused qkv bias with a k part) into a ViT with BEiT's q / v biases: the k bias is dropped
    and the output is unchanged (a k bias shifts every logit of a query alike)."""
    ref = _suite_vit(pretrain_size=64)
    with torch.no_grad():
        for blk in ref.blocks:
            blk.attn.qkv.bias.normal_()
    qv = _suite_vit(pretrain_size=64, qkv_bias='qv')
    rep = load_pretrained(qv, {k: v for k, v in ref.state_dict().items()}, fmt='timm')
    assert rep.missing == [] and rep.unexpected == [] and any('split into q_bias / v_bias' in n for n in rep.notes)
    x = torch.randn(1, 3, 48, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(qv(x), ref(x), rtol=1e-9, atol=1e-9)

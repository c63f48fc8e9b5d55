"""DINOv2 (with / without registers, SwiGLU ViT-g) and MAE checkpoints: synthesised with the public key names and
shape relations (``data/pretrain_layouts.json``), loaded through ``adapter.checkpoint``, and checked against a
forward assembled by hand from the checkpoint's own tensors (the source models' computation)."""
import json
from pathlib import Path

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

"""Synthesised pre-trained checkpoints for the tiny profile's pre-training grid (no real weights on CPU).

The paper's pre-training ablation loads ViT-B weights from three sources. The tiny profile cannot download them,
so it writes a random tiny ViT in each source's *file format* and lets the backbone load it through the suite's
own loader (``adapter.checkpoint``: format detection, key conversion, position-embedding resizing):

* ``deit``: a DeiT/timm ``.pth`` ({'model': {cls_token, pos_embed with the class slot, patch_embed, blocks.N.*,
  norm, head}}).
* ``augreg``: a JAX AugReg ``.npz`` ('embedding/kernel' (p, p, 3, C), 'cls', 'Transformer/posembed_input/...',
  'Transformer/encoderblock_N/...' with per-head query/key/value kernels, 'Transformer/encoder_norm', 'head').
* ``uniperceiver``: a Uni-Perceiver ``.pth`` as read by ``adapter.checkpoint`` ({'model': {visual_embed.patch_embed
  .{proj, pos_embed.weight (N, C)}, visual_embed.embeddings_type, visual_embed.embeddings_norm,
  layers.N.attention.self.{query, key, value}, attention.output.{dense, LayerNorm}, intermediate.dense,
  output.{dense, LayerNorm}}}). Its BERT layers are post-norm, so the backbone is built with ``post_norm=True,
  embed_norm=True`` (the grid's override for that cell, in both profiles).

* ``dinov2`` (beyond the paper): a DINOv2 ``*_pretrain.pth`` (top level: cls_token, pos_embed with the class slot
  for the checkpoint's grid, mask_token (1, C), patch_embed.proj.weight with a 14x14 kernel, blocks.N.* with
  ls1.gamma / ls2.gamma, norm). The backbone's 16-px ViT gets the kernel PI-resized by the loader; build it with
  pretrain_size=592 (the 37x37 grid of DINOv2's 518 px at patch 16) so the grid is not resized at load.
* ``mae`` (beyond the paper): an MAE pre-training state with its decoder ({'model': cls_token, pos_embed with a zero
  class slot, patch_embed, blocks.N.*, norm, mask_token, decoder_embed, decoder_pos_embed, decoder_blocks.N.*,
  decoder_norm, decoder_pred}); no layer scale (the backbone's gammas keep their initial value).
* ``eva02`` (beyond the paper): an EVA-02 MIM ``eva02_*_pt_*_p14.pt`` (a DeepSpeed file, {'module': cls_token,
  mask_token, pos_embed with the class slot, patch_embed.proj.weight with a 14x14 kernel, rope.freqs_cos / sin
  (grid, grid, head width), blocks.N.{norm1, attn.q_proj / k_proj / v_proj, attn.q_bias, attn.v_bias,
  attn.rope.freqs_*, attn.proj, norm2, mlp.w1, mlp.w2, mlp.ffn_ln, mlp.w3}, norm, lm_head}). The backbone must be
  built with EVA-02's block layout (``ffn='swiglu_ln', mlp_ratio=4 * 2 / 3, qkv_bias='qv', rope=True,
  rope_ref_grid=16``: the grid's override for that cell, in both profiles); no layer scale (gammas keep their
  initial value); its q / v biases and FFN norm are drawn away from their init so the round trip shows them.

* ``beit`` (BEiT / BEiTv2, the BEiT-Adapter rows): a fine-tuned BEiT ``.pth`` ({'model': cls_token, patch_embed,
  blocks.N.{gamma_1, gamma_2, norm1, attn.{q_bias, v_bias, qkv.weight, relative_position_bias_table,
  relative_position_index}, ...}, fc_norm, head}; no position embedding). Its tables are for BEiT's 224-px 14x14
  grid, so a backbone built for another grid gets them resized at load (the official BEiT loader's resize).

The weights are random (seeded), so the grid measures the loader path, not the value of pre-training.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

FORMATS = ('deit', 'augreg', 'uniperceiver', 'dinov2', 'mae', 'eva02', 'beit')
#: File suffix of each format.
SUFFIX = {'deit': '.pth', 'augreg': '.npz', 'uniperceiver': '.pth', 'dinov2': '.pth', 'mae': '.pth', 'eva02': '.pt',
          'beit': '.pth'}
#: Grid side of the synthesised BEiT tables (BEiT's 224 px at patch 16).
BEIT_GRID = 14
#: DINOv2's and EVA-02's patch side (the loader resizes the kernel to the backbone's 16).
DINOV2_PATCH = EVA02_PATCH = 14
#: Rows of the synthesised EVA-02 lm_head (the real one predicts the 1024-wide EVA-CLIP-g features; dropped at load).
EVA02_TEACHER = 32
#: MAE decoder of the synthesised file: width, blocks (MAE-B: 512, 8; tiny here, the decoder is dropped at load).
MAE_DECODER = (16, 1)
_UNIPERCEIVER_LAYER = {'attention.output.dense': 'attn.proj', 'attention.output.LayerNorm': 'norm1',
                       'intermediate.dense': 'mlp.fc1', 'output.dense': 'mlp.fc2', 'output.LayerNorm': 'norm2'}


def _suite_vit(backbone_cfg: dict, seed: int):
    """A freshly initialised suite ViT for ``backbone_cfg`` (the adapter run's own ViT settings)."""
    from adapter import build_backbone
    cfg = {k: v for k, v in backbone_cfg.items() if k not in ('pretrained', 'init_cfg', 'type')}
    torch.manual_seed(seed)
    return build_backbone(dict(cfg, type='ViTAdapter')).vit



def _timm(sd: dict, width: int) -> dict:
    out = {k: v for k, v in sd.items() if k != 'pos_embed'}
    out['cls_token'] = torch.randn(1, 1, width) * 0.02
    out['pos_embed'] = torch.cat([torch.randn(1, 1, width) * 0.02, sd['pos_embed']], 1)  # class slot first
    out['norm.weight'], out['norm.bias'] = torch.ones(width), torch.zeros(width)
    out['head.weight'], out['head.bias'] = torch.randn(1000, width) * 0.02, torch.zeros(1000)
    return {'model': out}


def _augreg(sd: dict, width: int, heads: int) -> dict:
    c, hd = width, width // heads
    out = {'embedding/kernel': sd['patch_embed.proj.weight'].permute(2, 3, 1, 0),
           'embedding/bias': sd['patch_embed.proj.bias'],
           'cls': torch.zeros(1, 1, c),
           'Transformer/posembed_input/pos_embedding': torch.cat([torch.zeros(1, 1, c), sd['pos_embed']], 1),
           'Transformer/encoder_norm/scale': torch.ones(c), 'Transformer/encoder_norm/bias': torch.zeros(c),
           'head/kernel': torch.zeros(c, 1000), 'head/bias': torch.zeros(1000)}
    blocks = sorted({int(k.split('.')[1]) for k in sd if k.startswith('blocks.')})
    for i in blocks:
        p, b = f'Transformer/encoderblock_{i}/', f'blocks.{i}.'
        a = p + 'MultiHeadDotProductAttention_1/'
        q, k, v = sd[b + 'attn.qkv.weight'].chunk(3, 0)
        qb, kb, vb = sd[b + 'attn.qkv.bias'].chunk(3, 0)
        for name, w, bias in (('query', q, qb), ('key', k, kb), ('value', v, vb)):
            out[a + f'{name}/kernel'] = w.t().reshape(c, heads, hd)
            out[a + f'{name}/bias'] = bias.reshape(heads, hd)
        out[a + 'out/kernel'] = sd[b + 'attn.proj.weight'].t().reshape(heads, hd, c)
        out[a + 'out/bias'] = sd[b + 'attn.proj.bias']
        for src, dst in (('LayerNorm_0', 'norm1'), ('LayerNorm_2', 'norm2')):
            out[p + f'{src}/scale'], out[p + f'{src}/bias'] = sd[b + f'{dst}.weight'], sd[b + f'{dst}.bias']
        for src, dst in (('Dense_0', 'fc1'), ('Dense_1', 'fc2')):
            out[p + f'MlpBlock_3/{src}/kernel'] = sd[b + f'mlp.{dst}.weight'].t()
            out[p + f'MlpBlock_3/{src}/bias'] = sd[b + f'mlp.{dst}.bias']
    return out


def _uniperceiver(sd: dict, width: int) -> dict:
    if 'embed_norm.weight' not in sd:
        raise ValueError('a Uni-Perceiver checkpoint needs the backbone built with post_norm=True, embed_norm=True')
    type_emb = torch.randn(1, width) * 0.02  # folded into the patch bias by the loader
    out = {'visual_embed.patch_embed.proj.weight': sd['patch_embed.proj.weight'],
           'visual_embed.patch_embed.proj.bias': sd['patch_embed.proj.bias'] - type_emb[0],
           'visual_embed.patch_embed.pos_embed.weight': sd['pos_embed'][0],
           'visual_embed.embeddings_type.weight': type_emb,
           'visual_embed.embeddings_norm.weight': sd['embed_norm.weight'],
           'visual_embed.embeddings_norm.bias': sd['embed_norm.bias']}
    blocks = sorted({int(k.split('.')[1]) for k in sd if k.startswith('blocks.')})
    for i in blocks:
        for kind in ('weight', 'bias'):
            for name, w in zip(('query', 'key', 'value'), sd[f'blocks.{i}.attn.qkv.{kind}'].chunk(3)):
                out[f'layers.{i}.attention.self.{name}.{kind}'] = w
            for src, dst in _UNIPERCEIVER_LAYER.items():
                out[f'layers.{i}.{src}.{kind}'] = sd[f'blocks.{i}.{dst}.{kind}']
    return {'model': out}


def _dinov2(sd: dict, width: int) -> tuple[dict, dict]:
    """DINOv2 layout; returns (checkpoint, the suite keys it encodes exactly: the 14x14 kernel is left out)."""
    g = torch.Generator().manual_seed(1)
    out = {k: v for k, v in sd.items() if k not in ('pos_embed', 'patch_embed.proj.weight')}
    for k in [k for k in out if k.endswith(('ls1.gamma', 'ls2.gamma'))]:  # learned gammas, not the init value
        out[k] = torch.empty(width).uniform_(0.05, 1.0, generator=g)
    out['patch_embed.proj.weight'] = torch.randn(width, 3, DINOV2_PATCH, DINOV2_PATCH, generator=g) * 0.02
    out['cls_token'] = torch.randn(1, 1, width, generator=g) * 0.02
    out['pos_embed'] = torch.cat([torch.randn(1, 1, width, generator=g) * 0.02, sd['pos_embed']], 1)
    out['mask_token'] = torch.zeros(1, width)
    out['norm.weight'], out['norm.bias'] = torch.ones(width), torch.zeros(width)
    encoded = {k: (sd[k] if k == 'pos_embed' else out[k]) for k in sd if k != 'patch_embed.proj.weight'}
    return out, encoded


def _mae(sd: dict, width: int, patch: int) -> tuple[dict, dict]:
    """MAE pre-training layout with its decoder; returns (checkpoint, the suite keys it encodes)."""
    dw, depth = MAE_DECODER
    g = torch.Generator().manual_seed(2)
    enc = {k: v for k, v in sd.items() if not k.endswith(('ls1.gamma', 'ls2.gamma'))}  # MAE has no layer scale
    out = {k: v for k, v in enc.items() if k != 'pos_embed'}
    n = sd['pos_embed'].shape[1]
    out['cls_token'] = torch.randn(1, 1, width, generator=g) * 0.02
    out['pos_embed'] = torch.cat([torch.zeros(1, 1, width), sd['pos_embed']], 1)  # sin-cos: zero class slot
    out['norm.weight'], out['norm.bias'] = torch.ones(width), torch.zeros(width)
    out['mask_token'] = torch.zeros(1, 1, dw)
    out['decoder_embed.weight'], out['decoder_embed.bias'] = torch.randn(dw, width, generator=g), torch.zeros(dw)
    out['decoder_pos_embed'] = torch.zeros(1, n + 1, dw)
    for i in range(depth):
        b = f'decoder_blocks.{i}.'
        for name, shape in (('norm1', (dw,)), ('attn.qkv', (3 * dw, dw)), ('attn.proj', (dw, dw)), ('norm2', (dw,)),
                            ('mlp.fc1', (4 * dw, dw)), ('mlp.fc2', (dw, 4 * dw))):
            out[b + name + '.weight'] = torch.randn(*shape, generator=g)
            out[b + name + '.bias'] = torch.zeros(shape[0])
    out['decoder_norm.weight'], out['decoder_norm.bias'] = torch.ones(dw), torch.zeros(dw)
    out['decoder_pred.weight'], out['decoder_pred.bias'] = torch.randn(patch * patch * 3, dw, generator=g), \
        torch.zeros(patch * patch * 3)
    return {'model': out}, enc


def _eva02(sd: dict, width: int, heads: int, rope_ref_grid) -> tuple[dict, dict]:
    """EVA-02 MIM layout under 'module'; returns (checkpoint, the suite keys it encodes: not the 14x14 kernel, not the
    layer-scale gammas, EVA-02 has none)."""
    from adapter.vit import rope_angles
    if 'blocks.0.attn.q_bias' not in sd or 'blocks.0.mlp.norm.weight' not in sd or rope_ref_grid is None:
        raise ValueError("an EVA-02 checkpoint needs the backbone built with EVA-02's blocks: ffn='swiglu_ln', "
                         "mlp_ratio=4 * 2 / 3, qkv_bias='qv', rope=True, rope_ref_grid=16")
    g = torch.Generator().manual_seed(3)
    enc = {k: v for k, v in sd.items() if not k.endswith(('ls1.gamma', 'ls2.gamma'))}
    for k in [k for k in enc if k.endswith(('attn.q_bias', 'attn.v_bias', 'mlp.norm.weight', 'mlp.norm.bias'))]:
        enc[k] = (1.0 if k.endswith('norm.weight') else 0.0) + 0.05 * torch.randn(enc[k].shape, generator=g)
    grid = math.isqrt(sd['pos_embed'].shape[1])
    ang = rope_angles((grid, grid), width // heads, tuple(rope_ref_grid)).reshape(grid, grid, -1)
    cos, sin = ang.cos().float(), ang.sin().float()
    out = {'cls_token': torch.randn(1, 1, width, generator=g) * 0.02, 'mask_token': torch.zeros(1, 1, width),
           'pos_embed': torch.cat([torch.randn(1, 1, width, generator=g) * 0.02, sd['pos_embed']], 1),
           'patch_embed.proj.weight': torch.randn(width, 3, EVA02_PATCH, EVA02_PATCH, generator=g) * 0.02,
           'patch_embed.proj.bias': sd['patch_embed.proj.bias'], 'rope.freqs_cos': cos, 'rope.freqs_sin': sin,
           'norm.weight': torch.ones(width), 'norm.bias': torch.zeros(width),
           'lm_head.weight': torch.randn(EVA02_TEACHER, width, generator=g) * 0.02,
           'lm_head.bias': torch.zeros(EVA02_TEACHER)}
    blocks = sorted({int(k.split('.')[1]) for k in sd if k.startswith('blocks.')})
    for i in blocks:
        b = f'blocks.{i}.'
        for name in ('norm1', 'norm2', 'attn.proj', 'mlp.w3'):
            out[b + name + '.weight'], out[b + name + '.bias'] = sd[b + name + '.weight'], sd[b + name + '.bias']
        for name, w in zip('qkv', sd[b + 'attn.qkv.weight'].chunk(3)):
            out[b + f'attn.{name}_proj.weight'] = w
        out[b + 'attn.q_bias'], out[b + 'attn.v_bias'] = enc[b + 'attn.q_bias'], enc[b + 'attn.v_bias']
        for kind in ('weight', 'bias'):
            out[b + f'mlp.w1.{kind}'], out[b + f'mlp.w2.{kind}'] = sd[b + f'mlp.w12.{kind}'].chunk(2)
            out[b + f'mlp.ffn_ln.{kind}'] = enc[b + f'mlp.norm.{kind}']
        out[b + 'attn.rope.freqs_cos'], out[b + 'attn.rope.freqs_sin'] = cos, sin
    enc.pop('patch_embed.proj.weight')
    return {'module': out, 'epoch': 149}, enc
def _beit(sd: dict, width: int, heads: int) -> tuple[dict, dict]:
    """Fine-tuned BEiT layout; returns (checkpoint, the suite keys it encodes exactly: the tables are left out, the
    loader resizes them from the 14x14 grid unless the backbone's grid is 14x14)."""
    from adapter.checkpoint import beit_relative_position_index
    g = torch.Generator().manual_seed(3)
    blocks = sorted({int(k.split('.')[1]) for k in sd if k.startswith('blocks.')})
    out = {'cls_token': sd.get('cls_token', torch.randn(1, 1, width, generator=g) * 0.02),
           'patch_embed.proj.weight': sd['patch_embed.proj.weight'], 'patch_embed.proj.bias': sd['patch_embed.proj.bias'],
           'fc_norm.weight': torch.ones(width), 'fc_norm.bias': torch.zeros(width),
           'head.weight': torch.randn(1000, width, generator=g) * 0.02, 'head.bias': torch.zeros(1000)}
    encoded = {k: v for k, v in sd.items() if k != 'pos_embed' and not k.endswith('attn.rel_pos_table')}
    rows = (2 * BEIT_GRID - 1) ** 2 + 3
    for i in blocks:
        b = f'blocks.{i}.'
        if b + 'attn.q_bias' in sd:
            q, v = sd[b + 'attn.q_bias'], sd[b + 'attn.v_bias']
        else:  # a fused-bias backbone: BEiT has no k bias, so the fused one it loads back has k = 0
            q, _, v = sd[b + 'attn.qkv.bias'].chunk(3)
            encoded[b + 'attn.qkv.bias'] = torch.cat([q, torch.zeros_like(q), v])
        out[b + 'attn.q_bias'], out[b + 'attn.v_bias'] = q, v
        out[b + 'attn.qkv.weight'] = sd[b + 'attn.qkv.weight']
        table = torch.randn(rows, heads, generator=g) * 0.02
        if b + 'attn.rel_pos_cls' in sd:
            table[-3:] = sd[b + 'attn.rel_pos_cls'].t()
        out[b + 'attn.relative_position_bias_table'] = table
        out[b + 'attn.relative_position_index'] = beit_relative_position_index(BEIT_GRID)
        for n in ('gamma_1', 'gamma_2'):  # learned gammas, not the init value
            out[b + n] = torch.empty(width).uniform_(0.05, 1.0, generator=g)
            if f'{b}ls{n[-1]}.gamma' in encoded:
                encoded[f'{b}ls{n[-1]}.gamma'] = out[b + n]
        for n in ('norm1', 'attn.proj', 'norm2', 'mlp.fc1', 'mlp.fc2'):
            out[b + n + '.weight'], out[b + n + '.bias'] = sd[b + n + '.weight'], sd[b + n + '.bias']
    return {'model': out}, encoded


def synthesize(fmt: str, path: str | os.PathLike, backbone_cfg: dict, seed: int = 0) -> tuple[Path, dict]:
    """Write a random tiny ViT checkpoint in ``fmt`` to ``path``.

    Args:
        fmt: 'deit' (.pth), 'augreg' (.npz), 'uniperceiver' (.pth; the backbone with post_norm / embed_norm),
            'dinov2' (.pth, 14x14 kernel), 'mae' (.pth, with a decoder), 'eva02' (.pt, 14x14 kernel; the backbone
            with EVA-02's block options) or 'beit' (.pth, 14x14-grid tables).
        path: Output file (its suffix is set from the format).
        backbone_cfg: The run's ``model.backbone`` config (arch, widths, pretrain_size).
        seed: Seed of the random weights.

    Returns:
        (the file written, the suite-named ViT state dict it encodes) -- for round-trip checks. For 'dinov2' the
        patch kernel is left out (the loader resizes it 14 -> 16), for 'mae' the layer-scale gammas (MAE has none),
        for 'eva02' both, for 'beit' the relative position tables (resized at load).
    """
    if fmt not in FORMATS:
        raise ValueError(f'cannot synthesise {fmt!r} checkpoints; formats: {FORMATS}')
    vit = _suite_vit(backbone_cfg, seed)
    sd, heads = {k: v.detach().clone() for k, v in vit.state_dict().items()}, vit.blocks[0].attn.num_heads
    width = sd['patch_embed.proj.weight'].shape[0]
    path = Path(path).with_suffix(SUFFIX[fmt])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp' + path.suffix)
    if fmt == 'deit':
        torch.save(_timm(sd, width), tmp)
    elif fmt == 'uniperceiver':
        torch.save(_uniperceiver(sd, width), tmp)
    elif fmt == 'dinov2':
        ckpt, sd = _dinov2(sd, width)
        torch.save(ckpt, tmp)
    elif fmt == 'mae':
        ckpt, sd = _mae(sd, width, sd['patch_embed.proj.weight'].shape[-1])
        torch.save(ckpt, tmp)
    elif fmt == 'eva02':
        ckpt, sd = _eva02(sd, width, heads, vit.rope_ref_grid)
        torch.save(ckpt, tmp)
    elif fmt == 'beit':
        ckpt, sd = _beit(sd, width, heads)
        torch.save(ckpt, tmp)
    else:
        np.savez(tmp, **{k: v.numpy().astype(np.float32) for k, v in _augreg(sd, width, heads).items()})
    os.replace(tmp, path)
    return path, sd

"""Pre-trained ViT checkpoints -> this suite's ``VisionTransformer`` (one pure conversion per source format).

Formats, detected from the keys:

- ``timm``: DeiT ``.pth`` (keys under 'model': cls_token, [dist_token], pos_embed (1, 1+N, C),
  patch_embed.proj.*, blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm, head[_dist]) and
  the timm-converted AugReg ``.pth`` (same names, top level).
- ``augreg_npz``: the JAX AugReg ``.npz`` ('embedding/kernel' (p, p, 3, C), 'cls',
  'Transformer/posembed_input/pos_embedding', 'Transformer/encoderblock_N/{LayerNorm_0, LayerNorm_2,
  MultiHeadDotProductAttention_1/{query,key,value,out}, MlpBlock_3/Dense_{0,1}}', 'Transformer/encoder_norm',
  'head', 'pre_logits').
- ``beit``: BEiT / BEiTv2 ``.pth`` (cls_token, blocks.N.attn.qkv.weight without bias + q_bias / v_bias,
  attn.relative_position_bias_table ((2Wh-1)(2Ww-1)+3, heads) and relative_position_index, gamma_1 / gamma_2,
  optional shared rel_pos_bias.*, no absolute position embedding unless use_abs_pos_emb; the fine-tuned releases
  end in fc_norm + head, the pre-trained ones in norm (+ lm_head, mask_token)).
- ``uniperceiver``: Uni-Perceiver ``.pth`` as loaded by the official ``UnifiedBertEncoder``
  (visual_embed.patch_embed.{proj, pos_embed.weight (N, C)}, visual_embed.embeddings_type.weight,
  visual_embed.embeddings_norm, layers.N.attention.self.{query,key,value}, attention.output.{dense, LayerNorm},
  intermediate.dense, output.{dense, LayerNorm}). Post-norm BERT layers: build the ViT with
  ``post_norm=True, embed_norm=True``. Assumed from the official ViT-Adapter code (no checkpoint inspected);
  an optional leading 'module.' / 'backbone.' / 'encoder.' prefix is stripped.
- ``dinov2``: DINOv2 ViT-S/B/L/g 14 ``*_pretrain.pth``, with or without registers (top level: cls_token (1, 1, C),
  pos_embed (1, 1 + 37*37, C) for 518 px, [register_tokens (1, 4, C)], mask_token (1, C), patch_embed.proj.weight
  (C, 3, 14, 14), blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2 | mlp.w12, mlp.w3
  (ViT-g's SwiGLU), ls2.gamma}, norm; ``blocks.K.N.*`` when saved with block_chunks > 0). Key names read from
  facebookresearch/dinov2 ``models/vision_transformer.py``, ``layers/{block, layer_scale, swiglu_ffn}.py``.
- ``mae``: an MAE pre-training state with its decoder (cls_token, pos_embed with a zero class slot, patch_embed,
  blocks.N.* as timm, norm, mask_token (1, 1, Cd), decoder_embed, decoder_pos_embed, decoder_blocks.N.*,
  decoder_norm, decoder_pred; facebookresearch/mae ``models_mae.py``). MAE's released encoder-only
  ``mae_pretrain_vit_*.pth`` ({'model': cls_token, pos_embed, patch_embed, blocks, norm}) and the fine-tuned ones
  (fc_norm, head, no norm) have timm's key layout and load as ``timm``.
- ``eva02``: the EVA-02 releases of baaivision/EVA (``EVA-02/asuka``): MIM pre-trained ``eva02_{Ti,S,B,L}_pt_*_p14``
  (a DeepSpeed file, the weights under 'module': cls_token, mask_token (1, 1, C), pos_embed (1, 1 + 16*16, C),
  patch_embed.proj (C, 3, 14, 14), rope.freqs_{cos,sin} (16, 16, C/heads), blocks.N.{norm1, attn.q_proj / k_proj /
  v_proj (no biases), attn.q_bias, attn.v_bias, attn.rope.freqs_{cos,sin}, attn.proj, norm2, mlp.w1, mlp.w2,
  mlp.ffn_ln, mlp.w3}, norm, lm_head (1024, C)), their ``_p14to16`` copies (kernel 16x16, pos_embed 14x14), and the
  ImageNet-21K / -1K fine-tuned ``*_medft_in21k_p14`` / ``*_ft_in1k_p14`` (448 px: pos_embed 32x32, fc_norm and
  head instead of norm / lm_head / mask_token). Ti / S have a fused attn.qkv (no bias) and xformers' fused SwiGLU
  mlp.w12 / mlp.w3 without ffn_ln. Key names read from ``EVA-02/asuka/{modeling_pretrain,modeling_finetune,rope}.py``
  and timm ``eva.py::checkpoint_filter_fn``; the (16, 16, 64) rope buffers, the 'module' container and lm_head's
  1024 rows from issue baaivision/EVA#56. Build the ViT with ``ffn='swiglu_ln'`` (B/L; Ti/S: ``'swiglu'`` with
  ``mlp_ratio=4``), ``rope=True, rope_ref_grid=16`` and ``qkv_bias='qv'`` (or True: the k third then starts at 0).
  The checkpoint's RoPE tables are checked against the model's (reference grid, head width) and dropped.
- ``suite``: a state dict of this suite's ViT (optionally prefixed 'vit.' or 'backbone.vit.').

Position embeddings lose their prefix tokens and are resized bicubically to the model's pre-training grid;
heads and class tokens are dropped (DINOv2 / MAE: the class token, with its position embedding folded in, and
DINOv2's register tokens are kept when the ViT carries them, ``class_token`` / ``num_register_tokens``, else
dropped and reported); a patch kernel of another size (DINOv2 / MAE-H 14x14) is resized to the model's patch with
FlexiViT's pseudo-inverse resize (``resize_patch_kernel``); BEiT layer scale goes to LayerScale when the model has it, else it is folded
exactly into attn.proj / mlp.fc2; the BEiT relative position table goes to the model's ``rel_pos_table`` when the
model has ``rel_pos_bias=True`` (resized as the official BEiT / ViT-Adapter loader does, ``resize_rel_pos_table_beit``),
its three class-token entries to ``rel_pos_cls`` when the ViT also has a class token, else they are dropped (the
whole table with a warning when the model has no relative position bias). BEiT's q / v biases load into a ViT built
with ``qkv_bias='qv'`` as they are, else into the fused ``qkv.bias`` with a zero k bias; a fused bias (timm, ...)
into a 'qv' ViT loses its k part, exactly (a k bias shifts every logit of a query alike). A position embedding
the ViT does not have (``abs_pos_embed=False``) is dropped. Width or depth mismatches raise.

References:
    timm ``vision_transformer.py::checkpoint_filter_fn`` and ``_load_weights`` (formats, read for facts);
    timm ``layers/pos_embed.py::resample_abs_pos_embed``; Beyer et al., "FlexiViT: One Model for All Patch
    Sizes", CVPR 2023, Sec. 3.4 (PI-resize).
"""
from __future__ import annotations

import math
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple, Union

import numpy as np
import torch
from torch import nn

from .vit import HW, resize_pos_embed, resize_rel_pos_table, rope_angles

StateDict = Dict[str, torch.Tensor]
FORMATS = ('timm', 'augreg_npz', 'beit', 'uniperceiver', 'dinov2', 'mae', 'eva02', 'suite')


@dataclass
class LoadReport:
    """What a load did: the detected format and every key that was not a one-to-one fit."""
    format: str
    missing: List[str] = field(default_factory=list)      # model keys the checkpoint did not provide
    unexpected: List[str] = field(default_factory=list)   # checkpoint keys the model has no place for
    dropped: List[str] = field(default_factory=list)      # checkpoint keys dropped on purpose (heads, cls, ...)
    notes: List[str] = field(default_factory=list)        # resizes, folds, warnings

    def __str__(self) -> str:
        return (f'format={self.format}; missing={self.missing}; unexpected={self.unexpected}; '
                f'dropped={self.dropped}; notes={self.notes}')


# ------------------------------------------------------------------------------------------------- reading
def _read_error(path: str, err: BaseException) -> str:
    """Why a weights-only read failed: pickled objects (trust may help) or a corrupt file (it will not)."""
    text = str(err)
    found = re.findall(r"GLOBAL (\S+?)(?: was| whose|\s|$)", text) + re.findall(r"but got <class '([^']+)'>", text)
    if isinstance(err, pickle.UnpicklingError) and (found or 'unrecognized function' in text):
        return (f'{path}: holds pickled Python objects ({", ".join(dict.fromkeys(found)) or "see torch.load"}), so it '
                f'was not read (unpickling can run code from the file). Only if you trust where this file comes '
                f'from, load it with trust=True (CLI: --trust)')
    detail = text.split('Check the documentation')[0].split('WeightsUnpickler error:')[-1]
    detail = ' '.join(detail.split())[-200:] or type(err).__name__
    return (f'{path}: is not a readable torch checkpoint (truncated, corrupt, or not a torch file at all); '
            f're-download or re-create it ({type(err).__name__}: {detail})')


def read_checkpoint(src: Union[str, os.PathLike, Mapping], trust: bool = False) -> StateDict:
    """Read a checkpoint file (.pth/.pt/.bin with torch, .npz with numpy) or take a mapping; unwrap
    'model' / 'state_dict' / 'module' containers. ``trust=True`` allows pickled objects (only for files you trust)."""
    if isinstance(src, Mapping):
        sd = dict(src)
    else:
        path = os.fspath(src)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'checkpoint {path!r} does not exist')
        if path.endswith('.npz'):
            with np.load(path) as npz:
                sd = {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}
        else:
            try:
                sd = torch.load(path, map_location='cpu', weights_only=not trust)
            except Exception as err:  # noqa: BLE001 - re-raised with the fix
                if trust:
                    raise
                raise RuntimeError(_read_error(path, err)) from None
    for key in ('model', 'state_dict', 'module'):
        if key in sd and isinstance(sd[key], Mapping):
            sd = dict(sd[key])
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def _strip(sd: StateDict, prefixes: Tuple[str, ...]) -> StateDict:
    for p in prefixes:
        if sd and all(k.startswith(p) for k in sd):
            sd = {k[len(p):]: v for k, v in sd.items()}
    return sd


def detect_format(sd: Mapping[str, torch.Tensor]) -> str:
    """Name the source format of a state dict from its keys (see module docstring)."""
    keys = list(sd)
    if any(k.startswith('Transformer/') or k == 'embedding/kernel' for k in keys):
        return 'augreg_npz'
    if any('attention.self.query' in k for k in keys) or any('visual_embed.' in k for k in keys):
        return 'uniperceiver'
    if any(re.match(r'(blocks\.\d+\.attn\.)?rope\.freqs_(cos|sin)$', k) or
           re.match(r'blocks\.\d+\.(attn\.q_proj\.weight|mlp\.w1\.weight|mlp\.ffn_ln\.weight)$', k) for k in keys):
        return 'eva02'   # before BEiT: EVA-02 also has attn.q_bias / attn.v_bias
    if any(k.endswith(('attn.q_bias', 'gamma_1', 'relative_position_bias_table')) for k in keys):
        return 'beit'
    if any(re.match(r'(backbone\.)?vit\.blocks\.\d+\.', k) for k in keys):
        return 'suite'
    if any(k.startswith('decoder_') for k in keys) and 'blocks.0.attn.qkv.weight' in keys:
        return 'mae'
    if ('mask_token' in keys or 'register_tokens' in keys) and any(
            re.match(r'blocks\.(\d+\.)?\d+\.attn\.qkv\.weight', k) for k in keys):
        return 'dinov2'
    if any(re.match(r'blocks\.\d+\.attn\.qkv\.weight', k) for k in keys):
        return 'timm'
    raise ValueError(f'unrecognised checkpoint layout; first keys: {keys[:8]}. Supported formats: {FORMATS}')


# ---------------------------------------------------------------------------------------------- converters
def _split_prefix_tokens(pos: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """(1, T, C) -> (1, N, C) grid tokens and the number of dropped prefix tokens (cls / dist)."""
    t = pos.shape[1]
    for n_prefix in (0, 1, 2):
        side = math.isqrt(t - n_prefix)
        if side * side == t - n_prefix:
            return pos[:, n_prefix:], n_prefix
    raise ValueError(f'position embedding with {t} tokens is not a square grid plus 0-2 prefix tokens')


def convert_timm(sd: StateDict) -> Tuple[StateDict, List[str], List[str]]:
    """DeiT / timm (incl. converted AugReg) -> suite names."""
    out, dropped, notes = {}, [], []
    for k, v in sd.items():
        if k in ('cls_token', 'dist_token') or k.startswith(('head', 'norm.', 'fc_norm', 'pre_logits')):
            dropped.append(k)
        elif k == 'pos_embed':
            out[k], n = _split_prefix_tokens(v)
            if n:
                notes.append(f'pos_embed: dropped {n} prefix token(s)')
        else:
            out[k] = v
    return out, dropped, notes


def convert_augreg_npz(sd: StateDict) -> Tuple[StateDict, List[str], List[str]]:
    """JAX AugReg .npz -> suite names (kernels transposed, attention heads flattened)."""
    out, dropped, notes, used = {}, [], [], set()

    def take(k):
        used.add(k)
        return sd[k].float()

    out['patch_embed.proj.weight'] = take('embedding/kernel').permute(3, 2, 0, 1).contiguous()
    out['patch_embed.proj.bias'] = take('embedding/bias')
    pos = take('Transformer/posembed_input/pos_embedding')
    out['pos_embed'], n = _split_prefix_tokens(pos)
    if n:
        notes.append(f'pos_embed: dropped {n} prefix token(s)')
    blocks = sorted({int(m.group(1)) for k in sd for m in [re.match(r'Transformer/encoderblock_(\d+)/', k)] if m})
    for i in blocks:
        p = f'Transformer/encoderblock_{i}/'
        a = p + 'MultiHeadDotProductAttention_1/'
        c = sd[a + 'query/kernel'].shape[0]
        q, k_, v = (take(a + f'{n}/kernel').reshape(c, c).t() for n in ('query', 'key', 'value'))
        out[f'blocks.{i}.attn.qkv.weight'] = torch.cat([q, k_, v], 0)
        out[f'blocks.{i}.attn.qkv.bias'] = torch.cat([take(a + f'{n}/bias').reshape(c)
                                                      for n in ('query', 'key', 'value')])
        out[f'blocks.{i}.attn.proj.weight'] = take(a + 'out/kernel').reshape(c, c).t()
        out[f'blocks.{i}.attn.proj.bias'] = take(a + 'out/bias')
        for src, dst in (('LayerNorm_0', 'norm1'), ('LayerNorm_2', 'norm2')):
            out[f'blocks.{i}.{dst}.weight'] = take(p + f'{src}/scale')
            out[f'blocks.{i}.{dst}.bias'] = take(p + f'{src}/bias')
        for src, dst in (('Dense_0', 'fc1'), ('Dense_1', 'fc2')):
            out[f'blocks.{i}.mlp.{dst}.weight'] = take(p + f'MlpBlock_3/{src}/kernel').t()
            out[f'blocks.{i}.mlp.{dst}.bias'] = take(p + f'MlpBlock_3/{src}/bias')
    for k in sd:
        if k in used:
            continue
        if k == 'cls' or k.startswith(('Transformer/encoder_norm', 'head', 'pre_logits')):
            dropped.append(k)
        else:
            out['__unused__/' + k] = sd[k]
    return out, dropped, notes


def convert_beit(sd: StateDict) -> Tuple[StateDict, List[str], List[str]]:
    """BEiT / BEiTv2 -> suite names: q_bias / v_bias kept (``load_pretrained`` fuses them for a ViT with a fused
    qkv bias), gamma_i to ls_i, each relative position table to ``rel_pos_table`` (heads, 2h-1, 2w-1) and its three
    class-token entries to ``rel_pos_cls`` (heads, 3), the class token kept (with ``pos_embed[:, 0]`` folded in
    when the checkpoint has an absolute position embedding)."""
    notes: List[str] = []
    out, dropped = _class_token(sd, notes), []
    shared = sd.get('rel_pos_bias.relative_position_bias_table')
    depth = 1 + max(int(m.group(1)) for k in sd for m in [re.match(r'blocks\.(\d+)\.', k)] if m)
    for k, v in sd.items():
        m = re.match(r'blocks\.(\d+)\.(.+)', k)
        if k == 'cls_token':
            continue
        if k == 'mask_token' or k.startswith(('head', 'norm.', 'fc_norm', 'lm_head', 'rel_pos_bias')):
            dropped.append(k)
            continue
        if k == 'pos_embed':
            out[k], n = _split_prefix_tokens(v)
            continue
        if not m:
            out[k] = v
            continue
        i, rest = m.group(1), m.group(2)
        if rest == 'attn.relative_position_index':
            dropped.append(k)
        elif rest == 'attn.relative_position_bias_table':
            out[f'blocks.{i}.attn.rel_pos_table'], out[f'blocks.{i}.attn.rel_pos_cls'] = _beit_table(v)
        elif rest in ('gamma_1', 'gamma_2'):
            out[f'blocks.{i}.ls{rest[-1]}.gamma'] = v
        else:
            out[f'blocks.{i}.{rest}'] = v
    if shared is not None:
        notes.append('shared relative position bias copied to every block')
        for i in range(depth):
            out[f'blocks.{i}.attn.rel_pos_table'], out[f'blocks.{i}.attn.rel_pos_cls'] = _beit_table(shared)
    return out, dropped, notes


def _beit_table(t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """BEiT ((2Wh-1)(2Ww-1)+3, heads) -> the grid table (heads, 2Wh-1, 2Ww-1) and the 3 class-token entries
    (heads, 3) in BEiT's order (class -> patches, patches -> class, class -> class)."""
    n = t.shape[0] - 3
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f'relative_position_bias_table with {t.shape[0]} rows is not (2W-1)^2 + 3')
    return t[:n].t().reshape(t.shape[1], side, side).contiguous(), t[n:].t().contiguous()


def beit_relative_position_index(grid: int) -> torch.Tensor:
    """BEiT's ``relative_position_index`` buffer (G*G + 1, G*G + 1) for a G x G grid after one class token: a pair
    of grid tokens reads row (dy + G - 1) * (2G - 1) + (dx + G - 1) of the table (dy, dx = query - key), the class
    query row T - 3, the class key column T - 2, class -> class T - 1 (T = (2G - 1)^2 + 3 rows)."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    rows = (2 * grid - 1) ** 2 + 3
    idx = torch.empty(grid * grid + 1, grid * grid + 1, dtype=torch.long)
    idx[1:, 1:] = (ys[:, None] - ys[None, :] + grid - 1) * (2 * grid - 1) + (xs[:, None] - xs[None, :] + grid - 1)
    idx[0, :] = rows - 3
    idx[1:, 0] = rows - 2
    idx[0, 0] = rows - 1
    return idx


def beit_offsets(src: int, dst: int) -> Tuple[np.ndarray, np.ndarray, float]:
    """Where the official BEiT loader puts a relative-position table's entries when it resizes a table side.

    ``src`` offsets -(src//2)..src//2 (src = 2G-1) are spread over the wider range of ``dst`` (= 2G'-1): offset
    +-k sits at +-(1 + q + ... + q^(k-1)), q from (1.01, 1.5) found by bisection (to 1e-6, the last midpoint) so
    that the outermost lands at about dst//2; near offsets keep their spacing, far ones are stretched. The new
    table is read at the integer offsets -(dst//2)..dst//2.

    Returns:
        (source coordinates (src,), target coordinates (dst,), q).
    """
    def span(q):  # 1 + q + ... + q^(n-1), n = src // 2
        return (1.0 - q ** (src // 2)) / (1.0 - q)

    left, right, q = 1.01, 1.5, 1.01
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if span(q) > dst // 2:
            right = q
        else:
            left = q
    dis = np.cumsum([1.0] + [q ** (i + 1) for i in range(src // 2 - 1)]) if src // 2 else np.zeros(0)
    x = np.concatenate([-dis[::-1], [0.0], dis])
    t = dst // 2
    return x, np.arange(-t, t + 0.1, 1.0), q


def resize_rel_pos_table_beit(table: torch.Tensor, dst_hw: HW) -> torch.Tensor:
    """Resize a relative-position table (heads, Sh, Sw) to the grid ``dst_hw`` (-> (heads, 2h-1, 2w-1)) as the
    official BEiT / ViT-Adapter checkpoint loader (``mmcv_custom/checkpoint.py``) does: every head is an
    interpolating bicubic spline (FITPACK, smoothing 0: scipy's ``interp2d(kind='cubic')`` of the official code,
    ``RectBivariateSpline`` here, scipy >= 1.14 has no ``interp2d``) through the entries placed at ``beit_offsets``,
    read at the integer offsets (arguments outside the source range are clamped to it, as FITPACK does). Computed in
    float64 (the official: float32 entries, FITPACK in float64, float32 result); returned in ``table``'s dtype. The
    official handles square tables only; a rectangular one is resized per axis the same way."""
    size = (2 * dst_hw[0] - 1, 2 * dst_hw[1] - 1)
    if tuple(table.shape[1:]) == size:
        return table
    if table.device.type == 'meta':
        return torch.empty(table.shape[0], *size, dtype=table.dtype, device='meta')
    if min(table.shape[1:]) < 4:  # a bicubic spline needs 4 entries per axis (the official code fails there)
        return resize_rel_pos_table(table, dst_hw)
    from scipy.interpolate import RectBivariateSpline  # noqa: PLC0415
    ys, dys, _ = beit_offsets(table.shape[1], size[0])
    xs, dxs, _ = beit_offsets(table.shape[2], size[1])
    z = table.detach().to('cpu', torch.float64).numpy()
    out = np.stack([RectBivariateSpline(ys, xs, zh, kx=3, ky=3, s=0)(dys, dxs) for zh in z])
    return torch.from_numpy(out).to(table.dtype).to(table.device)


_UNIPERCEIVER_LAYER = {
    'attention.output.dense': 'attn.proj', 'attention.output.LayerNorm': 'norm1',
    'intermediate.dense': 'mlp.fc1', 'output.dense': 'mlp.fc2', 'output.LayerNorm': 'norm2',
}


def convert_uniperceiver(sd: StateDict) -> Tuple[StateDict, List[str], List[str]]:
    """Uni-Perceiver UnifiedBertEncoder -> suite names (post-norm; type embedding folded into the patch bias)."""
    out, dropped, notes = {}, [], []
    for k, v in sd.items():
        m = re.match(r'layers\.(\d+)\.(.+)\.(weight|bias)$', k)
        if m and m.group(2) in _UNIPERCEIVER_LAYER:
            out[f'blocks.{m.group(1)}.{_UNIPERCEIVER_LAYER[m.group(2)]}.{m.group(3)}'] = v
        elif m and m.group(2) == 'attention.self.query':
            i, kind = m.group(1), m.group(3)
            out[f'blocks.{i}.attn.qkv.{kind}'] = torch.cat(
                [sd[f'layers.{i}.attention.self.{n}.{kind}'] for n in ('query', 'key', 'value')])
        elif m and m.group(2) in ('attention.self.key', 'attention.self.value'):
            continue
        elif k == 'visual_embed.patch_embed.proj.weight':
            out['patch_embed.proj.weight'] = v
        elif k == 'visual_embed.patch_embed.proj.bias':
            bias = v
            if 'visual_embed.embeddings_type.weight' in sd:
                bias = v + sd['visual_embed.embeddings_type.weight'][0]
                notes.append('embeddings_type folded into patch_embed.proj.bias')
            out['patch_embed.proj.bias'] = bias
        elif k == 'visual_embed.patch_embed.pos_embed.weight':
            out['pos_embed'] = v[None]
        elif k.startswith('visual_embed.embeddings_norm.'):
            out['embed_norm.' + k.rsplit('.', 1)[1]] = v
        elif k == 'visual_embed.embeddings_type.weight':
            continue
        else:
            out['__unused__/' + k] = v
    return out, dropped, notes


def _class_token(sd: StateDict, notes: List[str]) -> Dict[str, torch.Tensor]:
    """DINOv2 / MAE class token with its (constant) position embedding ``pos_embed[:, 0]`` folded in."""
    if 'cls_token' not in sd:
        return {}
    cls = sd['cls_token'].reshape(1, 1, -1)
    pos = sd.get('pos_embed')
    if pos is not None and _split_prefix_tokens(pos)[1] == 1:
        cls = cls + pos[:, :1]
        notes.append('cls_token: its position embedding pos_embed[:, 0] folded in')
    return {'cls_token': cls}


def convert_dinov2(sd: StateDict) -> Tuple[StateDict, List[str], List[str]]:
    """DINOv2 (with or without registers) -> suite names: chunked block keys un-chunked, position embedding without
    its class slot, class token (position folded in) and register tokens kept for a ViT that carries them."""
    notes: List[str] = []
    out, dropped = _class_token(sd, notes), []
    for k, v in sd.items():
        m = re.match(r'blocks\.\d+\.(\d+\..+)', k)   # block_chunks > 0: blocks.<chunk>.<block>.*
        if m:
            k = 'blocks.' + m.group(1)
        if k == 'cls_token':
            continue
        if k == 'mask_token' or k.startswith(('norm.', 'head', 'fc_norm')):
            dropped.append(k)
        elif k == 'pos_embed':
            out[k], _ = _split_prefix_tokens(v)
        else:
            out[k] = v
    if any(re.match(r'blocks\.\d+\.\d+\.', k) for k in sd):
        notes.append('chunked block keys blocks.K.N.* renamed blocks.N.*')
    return out, dropped, notes


def convert_mae(sd: StateDict) -> Tuple[StateDict, List[str], List[str]]:
    """MAE pre-training state -> suite names: the decoder and its mask token dropped, the encoder as timm's, the
    class token (position folded in) kept for a ViT that carries one."""
    notes: List[str] = []
    out, dropped = _class_token(sd, notes), []
    for k, v in sd.items():
        if k == 'cls_token':
            continue
        if k.startswith(('decoder_', 'mask_token', 'norm.', 'fc_norm', 'head')):
            dropped.append(k)
        elif k == 'pos_embed':
            out[k], _ = _split_prefix_tokens(v)
        else:
            out[k] = v
    return out, dropped, notes


#: Prefix of the RoPE tables a converter hands to ``load_pretrained`` for checking (never loaded, never reported).
ROPE_CHECK = '__rope_check__/'
_EVA02_RENAMES = {'mlp.ffn_ln.': 'mlp.norm.', 'attn.inner_attn_ln.': 'attn.norm.', 'gamma_1': 'ls1.gamma',
                  'gamma_2': 'ls2.gamma'}


def convert_eva02(sd: StateDict) -> Tuple[StateDict, List[str], List[str]]:
    """EVA-02 -> suite names: q_proj / k_proj / v_proj stacked into attn.qkv.weight, q_bias / v_bias into
    attn.qkv.bias with a zero k third, w1 / w2 stacked into mlp.w12, ffn_ln -> mlp.norm, inner_attn_ln -> attn.norm;
    the class token (position folded in) kept for a ViT that carries one; the RoPE tables (rope.freqs_cos / sin
    and their per-block copies blocks.N.attn.rope.*, one shared table) dropped, one copy handed to
    ``load_pretrained`` to check against the model; mask_token, lm_head, norm, fc_norm, head dropped."""
    notes: List[str] = []
    out, dropped = _class_token(sd, notes), []
    for name in ('rope.freqs_cos', 'rope.freqs_sin'):
        copies = [k for k in sd if k == name or re.fullmatch(r'blocks\.\d+\.attn\.' + re.escape(name), k)]
        if not copies:
            continue
        keep = name if name in sd else copies[0]
        differ = [k for k in copies if sd[k].shape != sd[keep].shape or
                  (not sd[k].is_meta and not torch.equal(sd[k], sd[keep]))]
        if differ:
            raise ValueError(f'EVA-02 checkpoint: the RoPE tables {differ} differ from {keep} (one table shared by '
                             f'every block in the pre-training / ImageNet releases); not a layout this loader knows')
        out[ROPE_CHECK + name] = sd[keep]   # checked against the model by load_pretrained, then discarded
        dropped += copies
    skip = set(dropped)
    for k, v in sd.items():
        if k == 'cls_token' or k in skip:
            continue
        m = re.match(r'blocks\.(\d+)\.(.+)', k)
        rest = m.group(2) if m else None
        if k in ('mask_token',) or k.startswith(('lm_head.', 'norm.', 'fc_norm.', 'head.')):
            dropped.append(k)
        elif k == 'pos_embed':
            out[k], _ = _split_prefix_tokens(v)
        elif not m:
            out[k] = v
        elif rest == 'attn.q_proj.weight':
            i = m.group(1)
            out[f'blocks.{i}.attn.qkv.weight'] = torch.cat([sd[f'blocks.{i}.attn.{n}_proj.weight'] for n in 'qkv'])
        elif rest in ('attn.k_proj.weight', 'attn.v_proj.weight', 'attn.v_bias', 'mlp.w2.weight', 'mlp.w2.bias'):
            continue
        elif rest == 'attn.q_bias':
            i = m.group(1)
            out[f'blocks.{i}.attn.qkv.bias'] = torch.cat([v, torch.zeros_like(v), sd[f'blocks.{i}.attn.v_bias']])
        elif rest in ('mlp.w1.weight', 'mlp.w1.bias'):
            i, kind = m.group(1), rest.rsplit('.', 1)[1]
            out[f'blocks.{i}.mlp.w12.{kind}'] = torch.cat([v, sd[f'blocks.{i}.mlp.w2.{kind}']])
        else:
            for src, dst in _EVA02_RENAMES.items():
                rest = rest.replace(src, dst)
            out[f'blocks.{m.group(1)}.{rest}'] = v
    return out, dropped, notes


_CONVERTERS = {'timm': convert_timm, 'augreg_npz': convert_augreg_npz, 'beit': convert_beit,
               'uniperceiver': convert_uniperceiver, 'dinov2': convert_dinov2, 'mae': convert_mae,
               'eva02': convert_eva02, 'suite': lambda sd: convert_suite(sd)}


def convert_suite(sd: StateDict) -> Tuple[StateDict, List[str], List[str]]:
    """This suite's adapter / ViT state dict: keep the 'vit.' part (optionally under 'backbone.')."""
    out, dropped = {}, []
    for k, v in sd.items():
        m = re.match(r'(?:backbone\.)?vit\.(.+)', k)
        if m:
            out[m.group(1)] = v
        else:
            dropped.append(k)
    return out, dropped, []


# ---------------------------------------------------------------------------------------------- loading
def _fold_layer_scale(sd: StateDict, notes: List[str]) -> None:
    for k in [k for k in sd if re.match(r'blocks\.\d+\.ls[12]\.gamma$', k)]:
        i, which = re.match(r'blocks\.(\d+)\.ls([12])', k).groups()
        g = sd.pop(k)
        fc2 = 'mlp.w3' if f'blocks.{i}.mlp.w3.weight' in sd else 'mlp.fc2'
        layer = f'blocks.{i}.attn.proj' if which == '1' else f'blocks.{i}.{fc2}'
        sd[layer + '.weight'] = sd[layer + '.weight'] * g[:, None]
        sd[layer + '.bias'] = sd[layer + '.bias'] * g
    notes.append('layer scale folded into attn.proj / mlp.fc2 (mlp.w3) (the model has layer_scale_init=None)')


def convert_state_dict(sd: StateDict, fmt: str = None) -> Tuple[StateDict, str, List[str], List[str]]:
    """Rename a raw checkpoint into suite ViT names. Returns (state dict, format, dropped keys, notes)."""
    sd = _strip(dict(sd), ('module.',))
    if fmt is None:
        fmt = detect_format(sd)
    if fmt == 'uniperceiver':
        sd = _strip(sd, ('backbone.', 'encoder.', 'fused_encoder.'))
    if fmt not in _CONVERTERS:
        raise ValueError(f'unknown checkpoint format {fmt!r}; choose one of {FORMATS}')
    out, dropped, notes = _CONVERTERS[fmt](sd)
    return out, fmt, dropped, notes


def load_pretrained(vit: nn.Module, src, strict_shapes: bool = True, trust: bool = False,
                    fmt: str = None) -> LoadReport:
    """Load a pre-trained ViT checkpoint into ``vit`` (an ``adapter.VisionTransformer``).

    Args:
        vit: the model.
        src: path (.pth/.pt/.bin/.npz) or a state-dict mapping.
        strict_shapes: raise on any shape mismatch left after conversion (else skip the key and report it).
        trust: allow pickled objects when reading a file.
        fmt: force a format instead of detecting it.

    Returns:
        LoadReport with missing / unexpected / dropped keys and notes (also warned when not empty).
    """
    sd, fmt, dropped, notes = convert_state_dict(read_checkpoint(src, trust), fmt)
    own = vit.state_dict()
    if fmt == 'uniperceiver' and not (getattr(vit, 'post_norm', False) and getattr(vit, 'embed_norm', None)):
        raise ValueError('Uni-Perceiver checkpoints hold post-norm BERT layers with a normed embedding: build the '
                         'backbone with post_norm=True, embed_norm=True to load them')
    _check_fit(sd, vit)
    rope_tables = {k[len(ROPE_CHECK):]: sd.pop(k) for k in list(sd) if k.startswith(ROPE_CHECK)}
    if rope_tables or fmt == 'eva02':   # every EVA-02 release has RoPE, with or without its tables in the file
        _check_rope(rope_tables, vit, notes)
    for k, option in (('cls_token', 'class_token=True'), ('register_tokens', 'num_register_tokens')):
        if k in sd and k not in own:
            sd.pop(k)
            dropped.append(k)
            notes[:] = [n for n in notes if not n.startswith(k + ':')]
            notes.append(f'{k} dropped: the ViT carries no such token (build it with {option} to keep it)')
    w = sd.get('patch_embed.proj.weight')
    if w is not None and tuple(w.shape[2:]) != (vit.patch_size, vit.patch_size):
        sd['patch_embed.proj.weight'] = resize_patch_kernel(w, (vit.patch_size, vit.patch_size))
        up = all(n >= o for n, o in zip((vit.patch_size, vit.patch_size), w.shape[2:]))
        notes.append(f'patch_embed.proj.weight resized {w.shape[2]}x{w.shape[3]} -> {vit.patch_size}x'
                     f'{vit.patch_size} (FlexiViT PI-resize: ' + ('exact on bilinearly upsampled patches)' if up else
                                                               'least squares, downsampling is not exact)'))
    if 'pos_embed' in sd and 'pos_embed' not in own:
        sd.pop('pos_embed')
        dropped.append('pos_embed')
        notes.append('pos_embed dropped: the ViT has no absolute position embedding (abs_pos_embed=False)')
    _fit_qkv_bias(sd, own, notes, rope=bool(getattr(vit, 'rope', False)))
    if 'pos_embed' in sd and sd['pos_embed'].shape != own['pos_embed'].shape:
        src_side = math.isqrt(sd['pos_embed'].shape[1])
        sd['pos_embed'] = resize_pos_embed(sd['pos_embed'], (src_side, src_side), vit.pretrain_grid)
        notes.append(f'pos_embed resized {src_side}x{src_side} -> {vit.pretrain_grid[0]}x{vit.pretrain_grid[1]}')
    if any(k.endswith('.ls1.gamma') for k in sd) and not any(k.endswith('.ls1.gamma') for k in own):
        _fold_layer_scale(sd, notes)
    tables = [k for k in sd if k.endswith('attn.rel_pos_table')]
    cls_entries = [k for k in sd if k.endswith('attn.rel_pos_cls')]
    if tables and k_missing_all(own, 'attn.rel_pos_table'):
        for k in tables + cls_entries:
            sd.pop(k)
            dropped.append(k)
        msg = ('relative position bias tables dropped: the model has rel_pos_bias=False '
               '(build it with rel_pos_bias=True to keep them)')
        warnings.warn(msg)
        notes.append(msg)
    elif cls_entries and k_missing_all(own, 'attn.rel_pos_cls'):
        for k in cls_entries:
            sd.pop(k)
            dropped.append(k)
        notes.append('class-token entries of the relative position bias (rel_pos_cls) dropped: the ViT has no class '
                     'token (build it with class_token=True to keep them)')
    resize = resize_rel_pos_table_beit if fmt == 'beit' else resize_rel_pos_table
    for k in tables:
        if k in sd and k in own and sd[k].shape != own[k].shape:
            src = tuple(sd[k].shape)
            sd[k] = resize(sd[k], ((own[k].shape[1] + 1) // 2, (own[k].shape[2] + 1) // 2))
            notes.append(f'{k} resized {src} -> {tuple(own[k].shape)}'
                         + (" (the official BEiT loader's spline over geometric offsets)" if fmt == 'beit' else
                            ' (bicubic)'))
    unexpected = [k.replace('__unused__/', '') for k in sd if k not in own]
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in sd.items() if k in own and v.shape != own[k].shape]
    if mismatched and strict_shapes:
        raise ValueError(f'{fmt} checkpoint does not fit the model: ' + '; '.join(mismatched))
    load = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
    missing = [k for k in own if k not in load]
    gammas = [k for k in missing if re.fullmatch(r'blocks\.\d+\.ls[12]\.gamma', k)]
    if gammas and not any(re.fullmatch(r'blocks\.\d+\.ls[12]\.gamma', k) for k in sd):
        # a checkpoint without layer scale (DeiT, AugReg) into a layer-scale ViT: the gammas keep their initial
        # value, as the official code's non-strict load leaves them (1.0: the loaded ViT computes what it did)
        missing = [k for k in missing if k not in gammas]
        init = sorted({float(v) for k in gammas for v in own[k].flatten()[:1]})
        notes.append(f'{len(gammas)} layer-scale gammas not in the checkpoint: kept at their initial value {init}')
    vit.load_state_dict(load, strict=False)
    report = LoadReport(fmt, missing, unexpected + mismatched, dropped, notes)
    if missing or unexpected or mismatched:
        warnings.warn(f'load_pretrained: {report}')
    return report


def _check_rope(tables: Dict[str, torch.Tensor], vit: nn.Module, notes: List[str]) -> None:
    """The checkpoint's RoPE tables (rope.freqs_cos / rope.freqs_sin, (n, n, head width) or (n*n, head width)) must
    be what the model's RoPE computes on an n x n grid: this checks the model has RoPE, its head width (so its head
    count, which the weights do not show), reference grid and frequency base. Raises saying what to build."""
    if not getattr(vit, 'rope', False):
        raise ValueError('the checkpoint was trained with a 2D rotary position embedding (rope.freqs_cos / '
                         'rope.freqs_sin, EVA-02): build the ViT with rope=True, rope_ref_grid=16 (EVA-02\'s '
                         '224 / 14), else the loaded model computes something else')
    if not tables:
        notes.append('no RoPE tables in the checkpoint: the model\'s reference grid '
                     f'{vit.rope_ref_grid[0]}x{vit.rope_ref_grid[1]} and head count are not checked')
        return
    ref = next(iter(tables.values()))
    width = ref.shape[-1]
    n = math.prod(ref.shape[:-1])
    side = math.isqrt(n)
    heads = vit.blocks[0].attn.num_heads
    if width * heads != vit.embed_dim:
        raise ValueError(f'the RoPE tables are for heads of width {width} ({vit.embed_dim // width} heads at width '
                         f'{vit.embed_dim}); the model has {heads}: build it with num_heads={vit.embed_dim // width}')
    if side * side != n:
        raise ValueError(f'RoPE table of shape {tuple(ref.shape)} is not a square grid of positions')
    grid = vit.rope_ref_grid
    if not ref.is_meta:
        ang = rope_angles((side, side), width, grid, vit.rope_theta)
        for name, fn in (('rope.freqs_cos', torch.cos), ('rope.freqs_sin', torch.sin)):
            if name in tables and not torch.allclose(tables[name].reshape(n, width).double(), fn(ang), atol=2e-3):
                fit = ''
                if {'rope.freqs_cos', 'rope.freqs_sin'} <= set(tables):   # angle of token (0, 1) at frequency 1
                    a = math.atan2(float(tables['rope.freqs_sin'].reshape(n, width)[1, width // 2]),
                                   float(tables['rope.freqs_cos'].reshape(n, width)[1, width // 2]))
                    fit = (f' (its column positions step by {a:.4g}: reference grid {a * side:.4g} for a '
                           f'{side}-wide grid)')
                raise ValueError(f'{name} of the checkpoint ({side}x{side} grid) is not the model\'s RoPE on that grid '
                                 f'(reference grid {grid}, theta {vit.rope_theta:g}){fit}; build the ViT with the '
                                 f'rope_ref_grid / rope_theta the checkpoint was trained with (EVA-02: 16, 10000)')
    notes.append(f'RoPE tables ({side}x{side} grid, head width {width}) '
                 + ('' if ref.is_meta else f'equal the model\'s 2D RoPE (reference grid {grid[0]}x{grid[1]}) and are ')
                 + 'dropped: the model recomputes them for every attended grid')


def _fit_qkv_bias(sd: StateDict, own: Mapping, notes: List[str], rope: bool = False) -> None:
    """Put the checkpoint's attention biases in the model's layout: BEiT's q / v biases (``attn.q_bias``,
    ``attn.v_bias``) fused into ``attn.qkv.bias`` with a zero k bias for a ViT with a fused bias, or a fused bias
    split into q / v for a ViT built with ``qkv_bias='qv'`` (its k part dropped: a k bias adds the same q.b to every
    logit of a query, so the attention is unchanged). With ``rope`` (the model rotates k) that no longer holds, and
    a non-zero k bias raises instead."""
    fused = merged = 0
    for k in [k for k in sd if k.endswith('attn.q_bias')]:
        base = k[:-len('q_bias')]
        if k in own or base + 'v_bias' not in sd or base + 'qkv.bias' not in own:
            continue
        q, v = sd.pop(k), sd.pop(base + 'v_bias')
        sd[base + 'qkv.bias'] = torch.cat([q, torch.zeros_like(q), v])
        fused += 1
    for k in [k for k in sd if k.endswith('attn.qkv.bias')]:
        base = k[:-len('qkv.bias')]
        if k in own or base + 'q_bias' not in own:
            continue
        q, kb, v = sd[k].chunk(3)
        if rope and not kb.is_meta and bool(kb.ne(0).any()):
            raise ValueError(f"{k}: the checkpoint has a k bias and the model none (qkv_bias='qv'); with RoPE a k "
                             f"bias changes the attention: build the ViT with qkv_bias=True to keep it")
        del sd[k]
        sd[base + 'q_bias'], sd[base + 'v_bias'] = q, v
        merged += 1
    if fused:
        notes.append(f'q_bias / v_bias of {fused} blocks fused into attn.qkv.bias (k bias 0, as BEiT computes it)')
    if merged:
        notes.append(f'attn.qkv.bias of {merged} blocks split into q_bias / v_bias (the model has qkv_bias=\'qv\'); '
                     'the k bias is dropped, which leaves the attention unchanged')


def _bilinear_matrix(src: Tuple[int, int], dst: Tuple[int, int]) -> torch.Tensor:
    """The (dst_h*dst_w, src_h*src_w) matrix of bilinear resizing (half-pixel centres, antialiased when shrinking)."""
    n = src[0] * src[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, *src)
    out = torch.nn.functional.interpolate(basis, size=dst, mode='bilinear', align_corners=False,
                                          antialias=dst[0] < src[0] or dst[1] < src[1])
    return out.reshape(n, dst[0] * dst[1]).t()


def resize_patch_kernel(weight: torch.Tensor, new_hw: Tuple[int, int]) -> torch.Tensor:
    """FlexiViT's pseudo-inverse resize of a patch-embedding kernel.

    With B the bilinear resize of a patch (``_bilinear_matrix``), the new kernel is ``pinv(B^T) w``, so that
    ``<B x, w_new> = <x, w>`` for every patch x when B has full column rank (upsampling, e.g. 14 -> 16): the
    resized kernel on a bilinearly upsampled patch gives exactly the old embedding. Shrinking is the least-squares
    solution instead.

    Args:
        weight: (C, in_chans, h, w) kernel.
        new_hw: (H, W).

    Returns:
        (C, in_chans, H, W) kernel, in ``weight``'s dtype (computed in float64).
    """
    c, k, h, w = weight.shape
    if (h, w) == tuple(new_hw):
        return weight
    b = _bilinear_matrix((h, w), tuple(new_hw))
    flat = weight.reshape(c * k, h * w).to(torch.float64)
    new = flat @ torch.linalg.pinv(b.t()).t()
    return new.reshape(c, k, *new_hw).to(weight.dtype)


def k_missing_all(own: Mapping, suffix: str) -> bool:
    """True when no key of ``own`` ends with ``suffix``."""
    return not any(k.endswith(suffix) for k in own)


def _check_fit(sd: StateDict, vit: nn.Module) -> None:
    """Raise when the checkpoint's width, depth or FFN type differs from the model's, saying which."""
    w = sd.get('patch_embed.proj.weight')
    if w is not None and w.shape[0] != vit.embed_dim:
        raise ValueError(f'checkpoint width {w.shape[0]} != model width {vit.embed_dim}: the checkpoint is '
                         f'for another ViT size (T 192, S 384, B 768, L 1024, g 1536); pick the matching arch')
    ckpt_ffn = ('swiglu_ln' if 'blocks.0.mlp.norm.weight' in sd else 'swiglu' if 'blocks.0.mlp.w12.weight' in sd
                else 'mlp' if 'blocks.0.mlp.fc1.weight' in sd else None)
    model_ffn = getattr(vit, 'ffn', 'mlp')
    if ckpt_ffn is not None and ckpt_ffn != model_ffn:
        names = {'swiglu_ln': 'mlp.w12 / mlp.norm / mlp.w3', 'swiglu': 'mlp.w12 / mlp.w3', 'mlp': 'mlp.fc1 / mlp.fc2'}
        raise ValueError(f"checkpoint FFN is {ckpt_ffn!r} ({names[ckpt_ffn]}) but the model's is {model_ffn!r}: "
                         f"build the ViT with ffn={ckpt_ffn!r}")
    if 'blocks.0.attn.norm.weight' in sd and vit.blocks[0].attn.norm is None:
        raise ValueError('the checkpoint has a LayerNorm on each attention output (attn.norm, EVA-02-CLIP\'s '
                         'inner_attn_ln): build the ViT with attn_norm=True')
    w_out = sd.get('blocks.0.mlp.w3.weight', sd.get('blocks.0.mlp.fc2.weight'))
    own_out = getattr(getattr(vit.blocks[0].mlp, 'w3', None), 'weight', None)
    own_out = own_out if own_out is not None else getattr(getattr(vit.blocks[0].mlp, 'fc2', None), 'weight', None)
    if ckpt_ffn in ('mlp', 'swiglu_ln') and w_out is not None and own_out is not None and \
            w_out.shape[1] != own_out.shape[1]:
        hint = ' (EVA-02: 4 * 2 / 3)' if w_out.shape[1] == int(vit.embed_dim * 4 * 2 / 3) else ''
        raise ValueError(f'checkpoint FFN hidden width {w_out.shape[1]} != model {own_out.shape[1]}: build the ViT '
                         f'with mlp_ratio={w_out.shape[1] / vit.embed_dim:.6g}{hint}')
    depth = {int(m.group(1)) for k in sd for m in [re.match(r'blocks\.(\d+)\.', k)] if m}
    if depth and max(depth) + 1 != vit.depth:
        raise ValueError(f'checkpoint depth {max(depth) + 1} != model depth {vit.depth}: pick the matching arch '
                         f'(T/S/B 12 blocks, L 24)')
    for k in ('blocks.0.attn.qkv.weight',):
        if k in sd and sd[k].shape[0] != 3 * vit.embed_dim:
            raise ValueError(f'{k} has shape {tuple(sd[k].shape)}, expected ({3 * vit.embed_dim}, {vit.embed_dim})')

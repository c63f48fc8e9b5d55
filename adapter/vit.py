"""Plain Vision Transformer with an indexable ``blocks`` list (the network the adapter wraps).

Patch 16, qkv bias, MLP ratio 4, stochastic-depth ramp, optional layer scale (the official ViT-Adapter ViT has
it, initialised to 1.0), absolute position embedding stored for the pre-training grid and resized bicubically to
the input grid, optional window attention (q/k/v projected, then zero-padded to a window multiple, no masking, as
the official ViT-Adapter ``WindowedAttention``), optional BEiT-style relative position bias, optional gradient
checkpointing. Options for later pre-training sources (defaults off): SwiGLU FFNs (DINOv2's, and EVA-02's with a
LayerNorm inside), class / register tokens, EVA-02's 2D rotary position embedding on q and k, q / v biases without a
k bias (BEiT, EVA-02: ``qkv_bias='qv'``), a LayerNorm on the attention output (sub-LN), and BEiT's layout: no
absolute position embedding (``abs_pos_embed=False``) and, with a class token, the relative position bias's three
class entries.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; Touvron et al., "DeiT", ICML 2021;
    Bao et al., "BEiT", ICLR 2022 (relative position bias, layer scale); Li et al., "Exploring Plain ViT
    Backbones for Object Detection", ECCV 2022 (window attention with padding); Fang et al., "EVA-02: A Visual
    Representation for Neon Genesis", 2023 (2D RoPE, SwiGLU with sub-LN; facts read from baaivision/EVA
    ``EVA-02/asuka/{rope,modeling_finetune}.py`` and ``EVA-02/det/detectron2/modeling/backbone/vit.py``). Layout of
    module names follows timm ``VisionTransformer`` so DeiT / timm checkpoints map one-to-one.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .constants import cached
from .norm import get_act, get_token_norm

HW = Tuple[int, int]


def resize_pos_embed(pos_embed: torch.Tensor, src_hw: HW, dst_hw: HW) -> torch.Tensor:
    """Resize a grid of absolute position embeddings bicubically.

    Args:
        pos_embed: (1, Hs*Ws, C) without class token.
        src_hw: (Hs, Ws) grid of ``pos_embed``.
        dst_hw: (Hd, Wd) target grid.

    Returns:
        (1, Hd*Wd, C)
    """
    if tuple(src_hw) == tuple(dst_hw):
        return pos_embed
    c = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, src_hw[0], src_hw[1], c).permute(0, 3, 1, 2)
    # in the parameter's dtype as the official code (float64 stays float64); half precision is computed in float32
    work = grid if grid.dtype in (torch.float32, torch.float64) else grid.float()
    grid = F.interpolate(work, size=tuple(dst_hw), mode='bicubic', align_corners=False)
    return grid.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, dst_hw[0] * dst_hw[1], c)


def resize_rel_pos_table(table: torch.Tensor, dst_hw: HW) -> torch.Tensor:
    """Resize a relative-position bias table (heads, 2Gh-1, 2Gw-1) to (heads, 2h-1, 2w-1) bicubically."""
    size = (2 * dst_hw[0] - 1, 2 * dst_hw[1] - 1)
    if tuple(table.shape[1:]) == size:
        return table
    return F.interpolate(table[None].float(), size=size, mode='bicubic', align_corners=False)[0].to(table.dtype)


def rel_pos_bias(table: torch.Tensor, hw: HW, cls: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Relative-position bias for an (h, w) token grid, optionally preceded by one class token.

    Args:
        table: (heads, 2Gh-1, 2Gw-1), resized to (2h-1, 2w-1) when the grid differs.
        hw: (h, w).
        cls: (heads, 3) BEiT's class-token entries, in BEiT's table order: class query -> patch keys, patch
            queries -> class key, class -> class. None: no class token.

    Returns:
        (heads, h*w, h*w), or (heads, 1 + h*w, 1 + h*w) with ``cls`` (the class token first).
    """
    h, w = hw
    table = resize_rel_pos_table(table, hw)
    ys, xs = torch.meshgrid(torch.arange(h, device=table.device), torch.arange(w, device=table.device),
                            indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + h - 1
    dx = xs[:, None] - xs[None, :] + w - 1
    bias = table[:, dy, dx]
    if cls is None:
        return bias
    heads, n = bias.shape[0], h * w
    cls = cls.to(bias.dtype)
    top = torch.cat([cls[:, 2:3], cls[:, 0:1].expand(heads, n)], 1)[:, None]      # (heads, 1, 1 + n)
    rest = torch.cat([cls[:, 1:2, None].expand(heads, n, 1), bias], 2)            # (heads, n, 1 + n)
    return torch.cat([top, rest], 1)


# ------------------------------------------------------------------------------------------ rotary embedding
def rope_frequencies(head_dim: int, theta: float = 10000.0, dtype=torch.float64) -> torch.Tensor:
    """The head_dim / 4 rotation frequencies of EVA-02's 2D RoPE: theta^(-2k / (head_dim / 2)), k = 0..head_dim/4-1
    (its ``VisionRotaryEmbeddingFast`` built for half the head width, 'lang' frequencies)."""
    if head_dim % 4:
        raise ValueError(f'2D RoPE rotates pairs of channels along two axes: the head width must be divisible by 4, '
                         f'got {head_dim}')
    half = head_dim // 2
    return 1.0 / theta ** (torch.arange(0, half, 2, dtype=dtype) / half)


def rope_angles(hw: HW, head_dim: int, ref_grid: HW, theta: float = 10000.0, dtype=torch.float64,
                device=None) -> torch.Tensor:
    """Rotation angles (h*w, head_dim) of EVA-02's 2D RoPE for the row-major tokens of an (h, w) grid.

    A token in row i, column j sits at (i * Rh / h, j * Rw / w): positions are rescaled so that any grid spans the
    reference grid (Rh, Rw) (EVA-02's ``t = arange(ft_seq_len) / ft_seq_len * pt_seq_len``, square there; each
    axis on its own here). The first head_dim / 2 channels turn with the row position, the last head_dim / 2 with
    the column position; channels 2k and 2k+1 of each half form a pair turned by position * frequency k.
    """
    h, w = hw
    freqs = rope_frequencies(head_dim, theta, dtype).to(device)
    rows = torch.arange(h, dtype=dtype, device=device) / h * ref_grid[0]
    cols = torch.arange(w, dtype=dtype, device=device) / w * ref_grid[1]
    a_rows = (rows[:, None] * freqs).repeat_interleave(2, -1)           # (h, head_dim / 2)
    a_cols = (cols[:, None] * freqs).repeat_interleave(2, -1)           # (w, head_dim / 2)
    ang = torch.cat([a_rows[:, None, :].expand(h, w, -1), a_cols[None, :, :].expand(h, w, -1)], -1)
    return ang.reshape(h * w, head_dim)


def _rope_cos_sin(hw: HW, head_dim: int, ref_grid: HW, theta: float, dtype, device) -> Tuple[torch.Tensor, ...]:
    """cos and sin of ``rope_angles`` in ``dtype`` (computed in float64), made once per grid and device."""
    def build():
        ang = rope_angles(hw, head_dim, ref_grid, theta, torch.float64, device)
        return ang.cos().to(dtype), ang.sin().to(dtype)
    return cached(('rope', tuple(hw), head_dim, tuple(ref_grid), float(theta), dtype, str(device)), build)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each channel pair (2k, 2k+1) of x (..., N, head_dim) by its angle: x * cos + rot(x) * sin with
    rot(x)_2k = -x_2k+1, rot(x)_2k+1 = x_2k (EVA-02's interleaved ``rotate_half``). Computed in float32 or better."""
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    pairs = work.unflatten(-1, (-1, 2))
    rot = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).flatten(-2)
    return (work * cos.to(work.dtype) + rot * sin.to(work.dtype)).to(x.dtype)


class DropPath(nn.Module):
    """Stochastic depth per sample (Huang et al. 2016)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        # the 1/keep scale goes on the (B, 1, ..) mask: one full-size multiply forward and backward, not two
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep).div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f'p={self.p}'


class LayerScale(nn.Module):
    """Per-channel residual scale (CaiT / BEiT ``gamma``)."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: (B, 3, H, W) -> (B, H/p * W/p, C), (H/p, W/p)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, HW]:
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        # contiguous tokens: a transposed view would propagate through every residual add, and each LayerNorm
        # and Linear of every block would then copy its input (34 copies per ViT-T forward at 512x512)
        return x.flatten(2).transpose(1, 2).contiguous(), hw


QKV_BIAS = (True, False, 'qv')


def check_qkv_bias(qkv_bias) -> Union[bool, str]:
    """``qkv_bias`` as given when it is one of ``QKV_BIAS`` (True: one bias on the fused qkv projection; False:
    none; 'qv': BEiT's separate q and v biases, no k bias), else a ValueError."""
    if isinstance(qkv_bias, str) and qkv_bias == 'qv':
        return 'qv'
    if isinstance(qkv_bias, bool):
        return qkv_bias
    raise ValueError(f"qkv_bias must be True, False or 'qv' (BEiT's q / v biases without a k bias), got {qkv_bias!r}")


class Attention(nn.Module):
    """Multi-head self-attention, global or windowed, with optional relative position bias or 2D RoPE.

    Args:
        dim: channels C.
        num_heads: heads; C must be divisible by it.
        qkv_bias: True: a bias on the fused qkv projection (``qkv.bias``); False: none; 'qv': BEiT's and EVA-02's
            layout, ``qkv`` without bias plus ``q_bias`` and ``v_bias`` (the k bias is fixed at zero; a k bias adds the same
            q.b to every logit of a query, so it never changes the attention).
        window_size: 0 for global attention, else the side of the square windows (the projected q/k/v map is
            zero-padded to a multiple).
        rel_pos_grid: (Gh, Gw) of a learned relative-position table (heads, 2Gh-1, 2Gw-1), or None for no bias.
            The table is resized bicubically to the attended grid (the window, or the whole map).
        rel_pos_cls: with ``rel_pos_grid``, BEiT's three class-token entries ``rel_pos_cls`` (heads, 3): class
            query -> patch keys, patch queries -> class key, class -> class. The attended sequence is then one
            class token followed by the grid (global attention only).
        rope_ref_grid: (Rh, Rw): rotate q and k of the grid tokens with EVA-02's 2D RoPE (``rope_angles``) over the
            attended grid (the window for windowed attention, the whole map for global attention) rescaled to this
            reference grid; None: no RoPE. Prefix tokens (class, registers) are not rotated.
        rope_theta: RoPE frequency base.
        attn_norm: LayerNorm of the attention output before ``proj`` (``norm``; EVA-02-CLIP's sub-LN
            ``inner_attn_ln``).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: Union[bool, str] = True, window_size: int = 0,
                 rel_pos_grid: Optional[HW] = None, rel_pos_cls: bool = False, rope_ref_grid: Optional[HW] = None,
                 rope_theta: float = 10000.0, attn_norm: bool = False):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f'Attention: dim={dim} must be divisible by num_heads={num_heads}')
        qkv_bias = check_qkv_bias(qkv_bias)
        if rel_pos_cls and (rel_pos_grid is None or window_size):
            raise ValueError('rel_pos_cls (the class-token entries of the relative position bias) needs a '
                             'relative position table and global attention')
        self.num_heads, self.window_size = num_heads, int(window_size or 0)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias is True)
        if qkv_bias == 'qv':
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)
        if rel_pos_grid is not None:
            gh, gw = rel_pos_grid
            self.rel_pos_table = nn.Parameter(torch.zeros(num_heads, 2 * gh - 1, 2 * gw - 1))
            nn.init.trunc_normal_(self.rel_pos_table, std=0.02)
        else:
            self.rel_pos_table = None
        self.rel_pos_cls = None
        if rel_pos_cls:  # drawn after the table, so models without it draw the same random numbers as before
            self.rel_pos_cls = nn.Parameter(torch.zeros(num_heads, 3))
            nn.init.trunc_normal_(self.rel_pos_cls, std=0.02)
        self.rope_ref_grid = tuple(rope_ref_grid) if rope_ref_grid is not None else None
        self.rope_theta = float(rope_theta)
        if self.rope_ref_grid is not None:
            rope_frequencies(dim // num_heads, rope_theta)  # raises for a head width not divisible by 4
        self.norm = get_token_norm('LN', dim) if attn_norm else None

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, 3C) q/k/v; BEiT's layout assembles the bias (q_bias, 0, v_bias)."""
        if self.q_bias is None:
            return self.qkv(x)
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        return F.linear(x, self.qkv.weight, bias)

    def _attend(self, qkv: torch.Tensor, hw: HW) -> torch.Tensor:
        """qkv: projected (B, P + h*w, 3C) of P prefix tokens and an (h, w) grid -> attention output
        (B, P + h*w, C), before ``proj``. A relative position bias needs P = 0, or P = 1 with ``rel_pos_cls``."""
        b, n, c3 = qkv.shape
        c = c3 // 3
        qkv = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.rope_ref_grid is not None:
            p = n - hw[0] * hw[1]   # prefix tokens, not rotated
            work = qkv.dtype if qkv.dtype in (torch.float32, torch.float64) else torch.float32
            cos, sin = _rope_cos_sin(hw, c // self.num_heads, self.rope_ref_grid, self.rope_theta, work, qkv.device)
            q = torch.cat([q[:, :, :p], apply_rope(q[:, :, p:], cos, sin)], 2) if p else apply_rope(q, cos, sin)
            k = torch.cat([k[:, :, :p], apply_rope(k[:, :, p:], cos, sin)], 2) if p else apply_rope(k, cos, sin)
        bias = None
        if self.rel_pos_table is not None:
            prefix = n - hw[0] * hw[1]
            if prefix not in ((0, 1) if self.rel_pos_cls is not None else (0,)):
                raise ValueError(f'relative position bias over {prefix} prefix token(s): only one class token with '
                                 'rel_pos_cls is supported')
            bias = rel_pos_bias(self.rel_pos_table, hw, self.rel_pos_cls if prefix else None)[None].to(qkv.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return out.transpose(1, 2).reshape(b, n, c)

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x if self.norm is None else self.norm(x))

    def forward(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        """x: (B, H*W, C) tokens of an (H, W) grid -> (B, H*W, C).

        Windowed: q, k, v are projected first and the (H, W, 3C) q/k/v map is zero-padded to a multiple of the
        window (as the official ViT-Adapter ``WindowedAttention``): padded positions are zero keys and values that
        still take part in each window's softmax (logit 0), and their outputs are cropped. RoPE turns q and k of
        each window by the window's own (ws, ws) grid (EVA-02's ViTDet backbone: ``rope_win``).
        """
        qkv = self._project(x)
        if not self.window_size:
            return self._out(self._attend(qkv, hw))
        b, _, c3 = qkv.shape
        h, w = hw
        ws = self.window_size
        ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
        qkv = F.pad(qkv.view(b, h, w, c3), (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        qkv = qkv.view(b, hp // ws, ws, wp // ws, ws, c3).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c3)
        out = self._attend(qkv, (ws, ws))
        c = out.shape[-1]
        out = out.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        return self._out(out[:, :h, :w].reshape(b, h * w, c))


class Mlp(nn.Module):
    """Two-layer MLP: fc1 -> act -> fc2."""

    def __init__(self, dim: int, hidden: int, act: str = 'GELU'):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = get_act(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLU(nn.Module):
    """SwiGLU FFN with a fused input projection: w12 -> (x1, x2) halves -> silu(x1) * x2 -> [norm] -> w3.

    Module names ``w12`` / ``w3`` are those of DINOv2's ``SwiGLUFFN`` (ViT-g/14), so its checkpoints map one-to-one.
    ``norm=True`` adds a LayerNorm of the hidden width before ``w3`` (``norm``): EVA-02-B/L's "SwiGLU with sub-LN"
    (its ``w1`` / ``w2`` are the two halves of ``w12``, its ``ffn_ln`` is ``norm``).
    """

    def __init__(self, dim: int, hidden: int, norm: bool = False):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.norm = get_token_norm('LN', hidden) if norm else None
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        h = F.silu(x1) * x2
        return self.w3(h if self.norm is None else self.norm(h))


FFN_TYPES = ('mlp', 'swiglu', 'swiglu_ln')


def swiglu_hidden(dim: int, mlp_ratio: float) -> int:
    """Hidden width of DINOv2's ``SwiGLUFFNFused``: 2/3 of the MLP width, rounded up to a multiple of 8
    (ViT-g/14: dim 1536, ratio 4 -> 4096)."""
    return (int(int(dim * mlp_ratio) * 2 / 3) + 7) // 8 * 8


def ffn_hidden(ffn: str, dim: int, mlp_ratio: float) -> int:
    """Hidden width of each FFN type: 'mlp' and 'swiglu_ln' int(dim * mlp_ratio) (EVA-02 builds its SwiGLU with
    mlp_ratio 4 * 2 / 3: 2048 for B, 2730 for L), 'swiglu' DINOv2's rule (``swiglu_hidden``)."""
    return swiglu_hidden(dim, mlp_ratio) if ffn == 'swiglu' else int(dim * mlp_ratio)


class Block(nn.Module):
    """Transformer block taking the token grid.

    Pre-norm (default): x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x)). ``post_norm=True``: norm1(x + attn x),
    then norm2(x + mlp x) (the BERT layout of Uni-Perceiver). ``ffn='swiglu'``: the FFN is ``SwiGLU``;
    ``ffn='swiglu_ln'``: ``SwiGLU`` with its inner LayerNorm (EVA-02-B/L). Attention options: see ``Attention``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: Union[bool, str] = True,
                 drop_path: float = 0.0, layer_scale_init: Optional[float] = None, window_size: int = 0,
                 rel_pos_grid: Optional[HW] = None, norm: str = 'LN', act: str = 'GELU', post_norm: bool = False,
                 ffn: str = 'mlp', rel_pos_cls: bool = False, rope_ref_grid: Optional[HW] = None,
                 rope_theta: float = 10000.0, attn_norm: bool = False):
        super().__init__()
        if ffn not in FFN_TYPES:
            raise ValueError(f'unknown ffn {ffn!r}; choose one of {FFN_TYPES}')
        self.post_norm = post_norm
        self.norm1 = get_token_norm(norm, dim)
        self.attn = Attention(dim, num_heads, qkv_bias, window_size, rel_pos_grid, rel_pos_cls=rel_pos_cls,
                              rope_ref_grid=rope_ref_grid, rope_theta=rope_theta, attn_norm=attn_norm)
        self.ls1 = LayerScale(dim, layer_scale_init) if layer_scale_init is not None else nn.Identity()
        self.norm2 = get_token_norm(norm, dim)
        hidden = ffn_hidden(ffn, dim, mlp_ratio)
        self.mlp = Mlp(dim, hidden, act) if ffn == 'mlp' else SwiGLU(dim, hidden, norm=ffn == 'swiglu_ln')
        self.ls2 = LayerScale(dim, layer_scale_init) if layer_scale_init is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        """x: (B, H*W, C) -> (B, H*W, C)."""
        if self.post_norm:  # BERT / Uni-Perceiver order: norm after each residual sum
            x = self.norm1(x + self.drop_path(self.ls1(self.attn(x, hw))))
            return self.norm2(x + self.drop_path(self.ls2(self.mlp(x))))
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), hw)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


def window_pattern(window_attn: Union[bool, Sequence[bool]], depth: int) -> List[bool]:
    """Per-block window flags. ``True`` = windows in every block but the last of each quarter (the
    ViT-Adapter / ViTDet detection pattern, e.g. global blocks 2, 5, 8, 11 for depth 12)."""
    if isinstance(window_attn, bool):
        if not window_attn:
            return [False] * depth
        if depth % 4 != 0:
            raise ValueError(f'window_attn=True needs depth divisible by 4 (got {depth}); pass a list of '
                             f'{depth} booleans instead')
        q = depth // 4
        return [(i + 1) % q != 0 for i in range(depth)]
    flags = [bool(f) for f in window_attn]
    if len(flags) != depth:
        raise ValueError(f'window_attn list has {len(flags)} entries but the ViT has depth {depth}')
    return flags


class VisionTransformer(nn.Module):
    """Plain ViT (no class token, no final norm, no head): a detection / segmentation trunk.

    Args:
        embed_dim: width C.
        depth: number of blocks.
        num_heads: attention heads.
        patch_size: patch side (16).
        mlp_ratio: MLP hidden ratio (4).
        qkv_bias: bias on qkv.
        drop_path_rate: stochastic depth, linearly ramped from 0 to this value over the blocks.
        layer_scale_init: initial value of the per-channel layer-scale gammas (``ls1``/``ls2``, the official
            ``gamma1``/``gamma2``) in every block; None: no layer scale. The official ViT-Adapter ViT uses 1.0.
        window_attn: bool or per-block list (see ``window_pattern``).
        window_size: window side in tokens (14).
        pretrain_size: image side the position embedding was trained at (224 -> 14x14 grid), int or (H, W).
        rel_pos_bias: learn a BEiT-style relative position bias per block (table sized for the pre-training
            grid for global blocks, for the window for windowed blocks).
        with_cp: gradient checkpointing per block (training only).
        in_chans: input channels.
        act: MLP activation name.
        post_norm: post-norm blocks (Uni-Perceiver / BERT layout).
        embed_norm: LayerNorm on the embedded tokens (after adding the position embedding; Uni-Perceiver).
        ffn: 'mlp' (fc1 -> act -> fc2), 'swiglu' (DINOv2 ViT-g's fused SwiGLU, ``w12`` / ``w3``, hidden width
            ``swiglu_hidden(embed_dim, mlp_ratio)``) or 'swiglu_ln' (the same with a LayerNorm before ``w3``, hidden
            width int(embed_dim * mlp_ratio): EVA-02-B/L).
        class_token: carry a class token in front of the patch tokens through the blocks (``cls_token``, its
            position embedding included: DINOv2 / MAE add ``pos_embed[:, 0]`` to it, a constant). With
            ``rel_pos_bias`` every block also learns BEiT's three class-token entries of the relative position
            bias (``attn.rel_pos_cls``, (heads, 3)), as BEiT and the official BEiT-Adapter.
        num_register_tokens: carry this many register tokens after the class token (DINOv2 "with registers":
            ``register_tokens``, no position embedding).
        abs_pos_embed: learn an absolute position embedding (``pos_embed``). False: none (BEiT's
            ``use_abs_pos_emb=False``; its position information is the relative position bias alone), and
            ``pretrain_size`` then only sizes the relative position tables (BEiT's ``img_size``).
        qkv_bias: True (one bias on the fused qkv projection), False, or 'qv' (BEiT: ``attn.q_bias`` and
            ``attn.v_bias``, no k bias; see ``Attention``).
        rope: EVA-02's 2D rotary position embedding on q and k of the grid tokens, in every block (next to the
            absolute position embedding, as EVA-02). Global blocks rotate over the whole token grid, windowed blocks
            over each window's grid (EVA-02's ViTDet backbone: ``rope_glb`` / ``rope_win``); either grid is
            rescaled to ``rope_ref_grid`` (``rope_angles``). Prefix tokens are not rotated. Needs a head width
            divisible by 4. No parameters (the tables are recomputed per grid).
        rope_ref_grid: the grid the RoPE positions are rescaled to, int or (H, W): EVA-02's ``pt_seq_len``, 16
            (224 / 14) for every EVA-02 release, also its 448-px fine-tuned ones. None: the pre-training grid.
        rope_theta: RoPE frequency base (10000).
        attn_norm: a LayerNorm on each attention output before its projection (``attn.norm``; EVA-02-CLIP's
            ``inner_attn_ln``; not in the EVA-02 MIM / ImageNet releases).

    EVA-02-B/L (``checkpoint`` format 'eva02'): ``ffn='swiglu_ln', mlp_ratio=4 * 2 / 3, qkv_bias='qv', rope=True,
    rope_ref_grid=16``, no layer scale in the release (the adapter's gammas then stay at their initial 1.0).

    Prefix tokens (class, registers) take part in every block's attention but are kept out of the spatial map:
    ``embed`` returns (B, P + H/p*W/p, C) tokens with the P prefix tokens first, and ``to_map`` drops them. They
    need global attention (windows index a grid); with the relative position bias only one class token is
    possible (BEiT's class entries), so registers are refused with it. Defaults (0 prefix tokens, 'mlp', an
    absolute position embedding, a fused qkv bias) build the network described above unchanged.
    """

    def __init__(self, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, patch_size: int = 16,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.0,
                 layer_scale_init: Optional[float] = None, window_attn: Union[bool, Sequence[bool]] = False,
                 window_size: int = 14, pretrain_size: Union[int, HW] = 224, rel_pos_bias: bool = False,
                 with_cp: bool = False, in_chans: int = 3, act: str = 'GELU', post_norm: bool = False,
                 embed_norm: bool = False, ffn: str = 'mlp', class_token: bool = False, num_register_tokens: int = 0,
                 abs_pos_embed: bool = True, rope: bool = False, rope_ref_grid: Optional[Union[int, HW]] = None,
                 rope_theta: float = 10000.0, attn_norm: bool = False):
        super().__init__()
        ps = (pretrain_size, pretrain_size) if isinstance(pretrain_size, int) else tuple(pretrain_size)
        self.embed_dim, self.depth, self.num_heads, self.patch_size = embed_dim, depth, num_heads, patch_size
        self.pretrain_grid = (ps[0] // patch_size, ps[1] // patch_size)
        self.with_cp, self.post_norm = with_cp, post_norm
        if isinstance(layer_scale_init, bool):
            raise TypeError(f'layer_scale_init is the initial gamma value (a float, e.g. 1.0 as the official code) or '
                            f'None for no layer scale, got {layer_scale_init!r}')
        self.window_flags = window_pattern(window_attn, depth)
        if num_register_tokens < 0:
            raise ValueError(f'num_register_tokens must be >= 0, got {num_register_tokens}')
        self.num_prefix_tokens = int(bool(class_token)) + int(num_register_tokens)
        if self.num_prefix_tokens and (any(self.window_flags) or (rel_pos_bias and num_register_tokens)):
            raise ValueError('class / register tokens need global attention without relative position bias (one '
                             'class token alone may have it: BEiT\'s class entries): build the ViT with '
                             'window_attn=False, rel_pos_bias=False or no registers, or without prefix tokens '
                             '(class_token=False, num_register_tokens=0; the loader then drops them)')
        self.qkv_bias = check_qkv_bias(qkv_bias)
        self.ffn = ffn
        self.rope, self.rope_theta = bool(rope), float(rope_theta)
        ref = self.pretrain_grid if rope_ref_grid is None else rope_ref_grid
        self.rope_ref_grid = ((ref, ref) if isinstance(ref, int) else tuple(ref)) if rope else None
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        if abs_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, self.pretrain_grid[0] * self.pretrain_grid[1], embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.pos_embed = None
        # linear ramp 0 -> rate, float32 steps as the official torch.linspace(0, rate, depth) (timm, BEiT)
        dpr = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()  # cpu: also under torch.device('meta')
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, self.qkv_bias, dpr[i], layer_scale_init,
                  window_size if self.window_flags[i] else 0,
                  ((window_size, window_size) if self.window_flags[i] else self.pretrain_grid)
                  if rel_pos_bias else None, act=act, post_norm=post_norm, ffn=ffn,
                  rel_pos_cls=bool(rel_pos_bias and class_token), rope_ref_grid=self.rope_ref_grid,
                  rope_theta=rope_theta, attn_norm=attn_norm)
            for i in range(depth)])
        self.embed_norm = get_token_norm('LN', embed_dim) if embed_norm else None
        self.apply(self._init_weights)
        # created after the weight init, so the default model draws the same random numbers as before
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.register_tokens = (nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
                                if num_register_tokens else None)
        for p in (self.cls_token, self.register_tokens):
            if p is not None:
                nn.init.normal_(p, std=1e-6)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, HW]:
        """(B, 3, H, W) -> tokens (B, P + H/16 * W/16, C) with position embedding added, and the grid; the P prefix
        tokens (class, registers; none by default) come first."""
        tokens, hw = self.patch_embed(x)
        if self.pos_embed is not None:
            tokens = tokens + resize_pos_embed(self.pos_embed, self.pretrain_grid, hw)
        if self.embed_norm is not None:
            tokens = self.embed_norm(tokens)
        if self.num_prefix_tokens:
            prefix = [p for p in (self.cls_token, self.register_tokens) if p is not None]
            tokens = torch.cat([p.expand(tokens.shape[0], -1, -1).to(tokens.dtype) for p in prefix] + [tokens], 1)
        return tokens, hw

    def run_blocks(self, x: torch.Tensor, hw: HW, start: int = 0, end: Optional[int] = None,
                   collect: Optional[list] = None) -> torch.Tensor:
        """Run ``blocks[start:end]`` on tokens (B, N, C); appends each block's output to ``collect``."""
        for blk in self.blocks[start:end]:
            if self.with_cp and self.training and x.requires_grad:
                x = checkpoint(blk, x, hw, use_reentrant=False)
            else:
                x = blk(x, hw)
            if collect is not None:
                collect.append(x)
        return x

    def split_prefix(self, x: torch.Tensor, hw: HW) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        """(B, P + H*W, C) -> (the P prefix tokens (B, P, C) or None when there are none, the grid tokens)."""
        p = x.shape[1] - hw[0] * hw[1]
        return (x[:, :p], x[:, p:]) if p else (None, x)

    def to_map(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        """(B, H*W, C) -> (B, C, H, W), a channels-last view of the tokens (no copy). With prefix tokens, a
        (B, P + H*W, C) sequence loses its P leading tokens first (they are not part of the spatial map)."""
        if self.num_prefix_tokens and x.shape[1] == self.num_prefix_tokens + hw[0] * hw[1]:
            x = x[:, self.num_prefix_tokens:]
        return x.reshape(x.shape[0], hw[0], hw[1], x.shape[2]).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> last-block map (B, C, H/16, W/16)."""
        tokens, hw = self.embed(x)
        return self.to_map(self.run_blocks(tokens, hw), hw)

    def forward_intermediates(self, x: torch.Tensor) -> List[torch.Tensor]:
        """(B, 3, H, W) -> list of every block's output map (B, C, H/16, W/16)."""
        tokens, hw = self.embed(x)
        outs: list = []
        self.run_blocks(tokens, hw, collect=outs)
        return [self.to_map(t, hw) for t in outs]

"""Multi-scale deformable attention in Triton: forward, backward (atomic or deterministic), optional fused softmax.

The ``'triton'`` backend of ``ops.ms_deform_attn`` (see ops/README.md). Same semantics as the reference
(``ops.reference``): bilinear sampling with pixel centres at (i + 0.5), zeros outside the map, and the reference's
rules for non-finite locations, weights and ``grad_output`` (the CUDA kernel's rules, ``ms_deform_attn_cuda.cu``).

Layout of the work: one program per (batch, tile of ``BLOCK_Q`` queries, head). The D channels of a value row are one
vector (``BLOCK_D`` = next power of two of D, masked), so a program holds (BLOCK_Q, BLOCK_D) tiles: the four corner
rows of every sampled point are gathered as four such tiles (each row D contiguous elements). The program loops over
levels and points (L and P are compile-time constants); locations, weights and the accumulation are float32 (float64
for float64 values); value may be float64 / float32 / float16 / bfloat16, the output has the value dtype.

Level table: H, W and the start of each level are read from the device tensors inside the kernels (no host
synchronisation; every allocation is sized from shapes, so the op can be captured in a CUDA graph). Each program
checks the table first (H, W > 0, H*W within what is left of S without overflow, starts the cumulative sums,
total S); a bad table loads nothing and makes the outputs and the location/weight gradients NaN (Triton's
``device_assert`` works only in debug mode, so there is no device-side assertion as in the CUDA kernel).

Backward, per (query, head, level, point): the four corner dot products ``sum_d grad_out[d] * v_c[d]`` (a reduction
over the channel vector) give the weight and location gradients. The value gradient:

- default: ``tl.atomic_add`` of ``a * w_c * grad_out`` into a float32 buffer (float64 for float64 values; float32
  and float64 values accumulate straight into the gradient), cast to the value dtype at the end. The summation
  order of the atomics varies between runs (nondeterministic in the last bits).
- deterministic (``torch.are_deterministic_algorithms_enabled()``): no atomics. The backward kernel writes, for every
  (query, head, level, point, corner), the value-gradient row it touches (a key, ``(n * S + s) * M + m``; a sentinel
  past the last row when the corner is outside the map) and its coefficient ``a * w_c``. A stable ``torch.sort`` of
  the keys groups the entries by row in a fixed order (ties keep the order of (query, level, point, corner)),
  ``torch.searchsorted`` finds each row's segment, and a gather kernel sums ``coefficient * grad_out[query]`` over
  the segment in that order, one program per tile of rows, in float32/float64 registers, writing every row of
  ``grad_value`` once (rows nothing touches get zeros). Bitwise identical between runs.
  Extra memory: E = N * Lq * M * L * P * 4 entries; keys (int32 when N * S * M < 2^31, else int64) and sorted keys,
  the sort's int64 permutation and a float32 coefficient: 20 bytes per entry with int32 keys (28 with int64), plus
  8 * (N * S * M + 1) bytes of segment offsets and the sort's scratch. ViT-Adapter-S at 1024x1024, batch 1:
  injector E = 4096 * 6 * 3 * 4 * 4 = 1.2 M entries, about 24 MB; extractor E = 21504 * 6 * 1 * 4 * 4 = 2.1 M,
  about 41 MB (the atomic path needs only the float32 value-gradient buffer of bf16/fp16 values).

Fused softmax (``softmax=True``): ``attention_weights`` are logits and the softmax over the L * P points of each
(query, head) is computed inside the kernels (forward: the probabilities; backward: the softmax's own backward,
``grad_logit = p * (grad_p - sum(p * grad_p))``, so the logit gradient comes out directly). Equals
``ms_deform_attn(value, ..., logits.softmax(-1))`` up to rounding.

Execution: compiled kernels on CUDA tensors, or Triton's interpreter when ``TRITON_INTERPRET=1`` was set before
triton was first imported in the process; then (only then) CPU tensors work too, slowly: that is how
``tests/ops/test_triton.py`` checks the kernels on CPU-only machines. The mode is fixed per process: Triton reads
``TRITON_INTERPRET`` when it wraps a function in ``triton.jit`` (its own ``triton.language`` helpers when triton is
imported, these kernels when this module is imported), not at launch. Only long-standing ``triton.language``
features are used (loads/stores with masks, ``tl.arange``, ``tl.sum``/``tl.max``, ``tl.where``, ``tl.floor``,
``tl.exp``, ``tl.atomic_add``, constexpr block sizes and static loops), for Triton 3.0 and later.

Importing this module imports triton if it can (``available()`` says whether it did); ``ops.functions`` imports
this module only when the 'triton' backend is asked for.
"""
# No ``from __future__ import annotations`` here: Triton reads the ``tl.constexpr`` annotations of the kernels.
import contextlib
import types

import torch

try:
    import triton
    import triton.language as tl
    _IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001  (ImportError, or a broken install raising something else)
    triton = None
    tl = types.SimpleNamespace(constexpr=None)  # the kernels below still parse; they are never wrapped
    _IMPORT_ERROR = exc

# Elements of a (BLOCK_Q, BLOCK_D) tile: forward and backward (the backward keeps about twice as many tiles live).
# First guesses for an H100/H200 (D = 64: 32 queries forward, 16 backward); not tuned on a GPU yet.
FWD_TILE = 2048
BWD_TILE = 1024
GATHER_TILE = 1024
NUM_WARPS = 4


def available() -> tuple[bool, str]:
    """(True, version) when triton imports, else (False, why)."""
    if triton is None:
        return False, f'{type(_IMPORT_ERROR).__name__}: {_IMPORT_ERROR}'
    return True, triton.__version__


# ----------------------------------------------------------------------------------------------------------------
# Kernels (plain functions here; wrapped by triton.jit per mode in _kernels). No helper functions: a jit'd kernel
# can only call jit'd helpers of its own mode, so each kernel is self-contained.

def _msda_fwd_kernel(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
                     S, Lq, M, D, n_qtiles,
                     L: tl.constexpr, P: tl.constexpr, SOFTMAX: tl.constexpr,
                     BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_LP: tl.constexpr):
    pid = tl.program_id(0)
    n = (pid // n_qtiles).to(tl.int64)
    qt = pid % n_qtiles
    m = tl.program_id(1).to(tl.int64)
    acc_ty = loc_ptr.dtype.element_ty  # float32, or float64 for float64 values
    q = qt * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_mask = q < Lq
    d = tl.arange(0, BLOCK_D)
    dm = (d < D)[None, :]
    row = (n * Lq + q) * M + m  # (n, q, m): row of the output / of the L*P points

    # The level table, checked before anything is loaded with it (as 0/1 integers: the interpreter mishandles
    # scalar booleans combined with vectors).
    total = n * 0
    valid = n * 0 + 1
    for l in tl.static_range(L):
        H = tl.load(shapes_ptr + 2 * l)
        W = tl.load(shapes_ptr + 2 * l + 1)
        start = tl.load(starts_ptr + l)
        ok_l = ((H > 0).to(tl.int64) * (W > 0).to(tl.int64) * (start == total).to(tl.int64)
                * (W <= (S - total) // tl.maximum(H, 1)).to(tl.int64))
        valid = valid * ok_l
        total = total + (H * ok_l) * W
    valid = valid * (total == S).to(tl.int64)
    q_ok = q_mask & ((q * 0 + valid) != 0)  # query in range and level table valid

    if SOFTMAX:
        lp = tl.arange(0, BLOCK_LP)
        lp_mask = lp < L * P
        z = tl.load(attn_ptr + row[:, None] * (L * P) + lp[None, :], mask=q_mask[:, None] & lp_mask[None, :],
                    other=float('-inf'))
        z = tl.where(lp_mask[None, :], z, float('-inf'))
        e = tl.exp(z - tl.max(z, 1)[:, None])
        probs = e / tl.sum(e, 1)[:, None]

    acc = tl.zeros([BLOCK_Q, BLOCK_D], dtype=acc_ty)
    poison = q < 0  # all False: a non-finite location, or a non-finite weight on a zero sample -> NaN output
    for l in tl.static_range(L):
        H = tl.load(shapes_ptr + 2 * l)
        W = tl.load(shapes_ptr + 2 * l + 1)
        start = tl.load(starts_ptr + l)
        Hf = H.to(acc_ty)
        Wf = W.to(acc_ty)
        for p in tl.static_range(P):
            i = l * P + p
            pt = row * (L * P) + i
            x = tl.load(loc_ptr + 2 * pt, mask=q_mask, other=0.0)
            y = tl.load(loc_ptr + 2 * pt + 1, mask=q_mask, other=0.0)
            if SOFTMAX:
                a = tl.sum(tl.where(lp[None, :] == i, probs, 0.0), 1)
            else:
                a = tl.load(attn_ptr + pt, mask=q_mask, other=0.0)
            h_im = y * Hf - 0.5
            w_im = x * Wf - 0.5
            inside = (h_im > -1.0) & (w_im > -1.0) & (h_im < Hf) & (w_im < Wf) & q_ok
            finite = ((h_im - h_im) == 0) & ((w_im - w_im) == 0) & ((a - a) == 0)
            poison = poison | ((inside == 0) & (finite == 0))
            hs = tl.where(inside, h_im, 0.0)
            ws = tl.where(inside, w_im, 0.0)
            hf = tl.floor(hs)
            wf = tl.floor(ws)
            lh = hs - hf
            lw = ws - wf
            hh = 1.0 - lh
            hw = 1.0 - lw
            h0 = hf.to(tl.int64)
            w0 = wf.to(tl.int64)
            top = inside & (h0 >= 0)
            bottom = inside & (h0 + 1 < H)
            left = w0 >= 0
            right = w0 + 1 < W
            key = (n * S + start + h0 * W + w0) * M + m  # value row (n, s, m) of the top-left corner
            base = value_ptr + key[:, None] * D + d[None, :]
            c00 = top & left
            c01 = top & right
            c10 = bottom & left
            c11 = bottom & right
            v00 = tl.load(base, mask=c00[:, None] & dm, other=0.0).to(acc_ty)
            v01 = tl.load(base + M * D, mask=c01[:, None] & dm, other=0.0).to(acc_ty)
            v10 = tl.load(base + W * M * D, mask=c10[:, None] & dm, other=0.0).to(acc_ty)
            v11 = tl.load(base + (W + 1) * M * D, mask=c11[:, None] & dm, other=0.0).to(acc_ty)
            w00 = tl.where(c00, a * (hh * hw), 0.0)
            w01 = tl.where(c01, a * (hh * lw), 0.0)
            w10 = tl.where(c10, a * (lh * hw), 0.0)
            w11 = tl.where(c11, a * (lh * lw), 0.0)
            acc += w00[:, None] * v00 + w01[:, None] * v01 + w10[:, None] * v10 + w11[:, None] * v11
    bad = (poison | (q_ok == 0)) & q_mask
    acc = tl.where(bad[:, None], float('nan'), acc)
    tl.store(out_ptr + row[:, None] * D + d[None, :], acc.to(out_ptr.dtype.element_ty), mask=q_mask[:, None] & dm)


def _msda_bwd_kernel(gout_ptr, value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr,
                     gvalue_ptr, gloc_ptr, gattn_ptr, keys_ptr, coef_ptr,
                     S, Lq, M, D, n_qtiles, n_rows,
                     L: tl.constexpr, P: tl.constexpr, SOFTMAX: tl.constexpr, DETERMINISTIC: tl.constexpr,
                     BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_LP: tl.constexpr):
    pid = tl.program_id(0)
    n = (pid // n_qtiles).to(tl.int64)
    qt = pid % n_qtiles
    m = tl.program_id(1).to(tl.int64)
    acc_ty = loc_ptr.dtype.element_ty
    q = qt * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_mask = q < Lq
    d = tl.arange(0, BLOCK_D)
    dm = (d < D)[None, :]
    row = (n * Lq + q) * M + m

    # The level table, checked before anything is loaded with it (as 0/1 integers: the interpreter mishandles
    # scalar booleans combined with vectors).
    total = n * 0
    valid = n * 0 + 1
    for l in tl.static_range(L):
        H = tl.load(shapes_ptr + 2 * l)
        W = tl.load(shapes_ptr + 2 * l + 1)
        start = tl.load(starts_ptr + l)
        ok_l = ((H > 0).to(tl.int64) * (W > 0).to(tl.int64) * (start == total).to(tl.int64)
                * (W <= (S - total) // tl.maximum(H, 1)).to(tl.int64))
        valid = valid * ok_l
        total = total + (H * ok_l) * W
    valid = valid * (total == S).to(tl.int64)
    q_ok = q_mask & ((q * 0 + valid) != 0)  # query in range and level table valid

    if SOFTMAX:
        lp = tl.arange(0, BLOCK_LP)
        lp_mask = lp < L * P
        z = tl.load(attn_ptr + row[:, None] * (L * P) + lp[None, :], mask=q_mask[:, None] & lp_mask[None, :],
                    other=float('-inf'))
        z = tl.where(lp_mask[None, :], z, float('-inf'))
        e = tl.exp(z - tl.max(z, 1)[:, None])
        probs = e / tl.sum(e, 1)[:, None]
        grad_p = tl.zeros([BLOCK_Q, BLOCK_LP], dtype=acc_ty)

    g = tl.load(gout_ptr + row[:, None] * D + d[None, :], mask=q_mask[:, None] & dm, other=0.0).to(acc_ty)
    g_fin = tl.sum(g * 0.0, 1) == 0  # the grad_output row is finite
    for l in tl.static_range(L):
        H = tl.load(shapes_ptr + 2 * l)
        W = tl.load(shapes_ptr + 2 * l + 1)
        start = tl.load(starts_ptr + l)
        Hf = H.to(acc_ty)
        Wf = W.to(acc_ty)
        for p in tl.static_range(P):
            i = l * P + p
            pt = row * (L * P) + i
            x = tl.load(loc_ptr + 2 * pt, mask=q_mask, other=0.0)
            y = tl.load(loc_ptr + 2 * pt + 1, mask=q_mask, other=0.0)
            if SOFTMAX:
                a = tl.sum(tl.where(lp[None, :] == i, probs, 0.0), 1)
            else:
                a = tl.load(attn_ptr + pt, mask=q_mask, other=0.0)
            h_im = y * Hf - 0.5
            w_im = x * Wf - 0.5
            inside = (h_im > -1.0) & (w_im > -1.0) & (h_im < Hf) & (w_im < Wf) & q_ok
            hs = tl.where(inside, h_im, 0.0)
            ws = tl.where(inside, w_im, 0.0)
            hf = tl.floor(hs)
            wf = tl.floor(ws)
            lh = hs - hf
            lw = ws - wf
            hh = 1.0 - lh
            hw = 1.0 - lw
            h0 = hf.to(tl.int64)
            w0 = wf.to(tl.int64)
            top = inside & (h0 >= 0)
            bottom = inside & (h0 + 1 < H)
            left = w0 >= 0
            right = w0 + 1 < W
            key = (n * S + start + h0 * W + w0) * M + m
            base = key[:, None] * D + d[None, :]
            c00 = top & left
            c01 = top & right
            c10 = bottom & left
            c11 = bottom & right
            v00 = tl.load(value_ptr + base, mask=c00[:, None] & dm, other=0.0).to(acc_ty)
            v01 = tl.load(value_ptr + base + M * D, mask=c01[:, None] & dm, other=0.0).to(acc_ty)
            v10 = tl.load(value_ptr + base + W * M * D, mask=c10[:, None] & dm, other=0.0).to(acc_ty)
            v11 = tl.load(value_ptr + base + (W + 1) * M * D, mask=c11[:, None] & dm, other=0.0).to(acc_ty)
            # corner dot products with grad_output (a corner outside the map contributes nothing, even for a
            # non-finite grad_output)
            s00 = tl.where(c00, tl.sum(g * v00, 1), 0.0)
            s01 = tl.where(c01, tl.sum(g * v01, 1), 0.0)
            s10 = tl.where(c10, tl.sum(g * v10, 1), 0.0)
            s11 = tl.where(c11, tl.sum(g * v11, 1), 0.0)
            ga = hh * hw * s00 + hh * lw * s01 + lh * hw * s10 + lh * lw * s11
            dw = -hh * s00 + hh * s01 - lh * s10 + lh * s11
            dh = -hw * s00 - lw * s01 + hw * s10 + lw * s11
            gx = a * dw * Wf
            gy = a * dh * Hf
            # outside the map: zero gradients, NaN where the reference's are (non-finite location, weight or
            # grad_output row; the x gradient depends on y's finiteness and vice versa, as in grid_sample)
            h_fin = (h_im - h_im) == 0
            w_fin = (w_im - w_im) == 0
            ga_ok = g_fin & ((a - a) == 0)
            ga = tl.where(inside, ga, tl.where(h_fin & w_fin & g_fin, 0.0, float('nan')))
            gx = tl.where(inside, gx, tl.where(h_fin & ga_ok, 0.0, float('nan')))
            gy = tl.where(inside, gy, tl.where(w_fin & ga_ok, 0.0, float('nan')))
            ga = tl.where(q_ok, ga, float('nan'))
            gx = tl.where(q_ok, gx, float('nan'))
            gy = tl.where(q_ok, gy, float('nan'))
            tl.store(gloc_ptr + 2 * pt, gx, mask=q_mask)
            tl.store(gloc_ptr + 2 * pt + 1, gy, mask=q_mask)
            if SOFTMAX:
                grad_p = tl.where(lp[None, :] == i, ga[:, None], grad_p)
            else:
                tl.store(gattn_ptr + pt, ga, mask=q_mask)
            w00 = tl.where(c00, a * (hh * hw), 0.0)
            w01 = tl.where(c01, a * (hh * lw), 0.0)
            w10 = tl.where(c10, a * (lh * hw), 0.0)
            w11 = tl.where(c11, a * (lh * lw), 0.0)
            if DETERMINISTIC:
                # one (key, coefficient) entry per corner; the gather kernel sums them in a fixed order
                e0 = pt * 4
                tl.store(keys_ptr + e0, tl.where(c00, key, n_rows), mask=q_mask)
                tl.store(keys_ptr + e0 + 1, tl.where(c01, key + M, n_rows), mask=q_mask)
                tl.store(keys_ptr + e0 + 2, tl.where(c10, key + W * M, n_rows), mask=q_mask)
                tl.store(keys_ptr + e0 + 3, tl.where(c11, key + (W + 1) * M, n_rows), mask=q_mask)
                tl.store(coef_ptr + e0, w00, mask=q_mask)
                tl.store(coef_ptr + e0 + 1, w01, mask=q_mask)
                tl.store(coef_ptr + e0 + 2, w10, mask=q_mask)
                tl.store(coef_ptr + e0 + 3, w11, mask=q_mask)
            else:
                tl.atomic_add(gvalue_ptr + base, w00[:, None] * g, mask=c00[:, None] & dm)
                tl.atomic_add(gvalue_ptr + base + M * D, w01[:, None] * g, mask=c01[:, None] & dm)
                tl.atomic_add(gvalue_ptr + base + W * M * D, w10[:, None] * g, mask=c10[:, None] & dm)
                tl.atomic_add(gvalue_ptr + base + (W + 1) * M * D, w11[:, None] * g, mask=c11[:, None] & dm)
    if SOFTMAX:
        dot = tl.sum(probs * grad_p, 1)
        gz = probs * (grad_p - dot[:, None])
        tl.store(gattn_ptr + row[:, None] * (L * P) + lp[None, :], gz, mask=q_mask[:, None] & lp_mask[None, :])


def _msda_gather_kernel(gout_ptr, perm_ptr, coef_ptr, offsets_ptr, gvalue_ptr, n_rows, D,
                        LP4: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    """Deterministic value gradient: row r of grad_value (as (N*S*M, D)) = sum over its sorted segment of entries
    of coefficient * grad_out[query row of the entry], summed in segment order."""
    acc_ty = coef_ptr.dtype.element_ty
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    r_mask = r < n_rows
    d = tl.arange(0, BLOCK_D)
    dm = (d < D)[None, :]
    beg = tl.load(offsets_ptr + r, mask=r_mask, other=0)
    cnt = tl.load(offsets_ptr + r + 1, mask=r_mask, other=0) - beg
    acc = tl.zeros([BLOCK_R, BLOCK_D], dtype=acc_ty)
    for j in range(0, tl.max(cnt, 0)):
        has = j < cnt
        e = tl.load(perm_ptr + beg + j, mask=has, other=0)
        c = tl.load(coef_ptr + e, mask=has, other=0.0)
        gv = tl.load(gout_ptr + (e // LP4)[:, None] * D + d[None, :], mask=has[:, None] & dm, other=0.0)
        acc += c[:, None] * gv.to(acc_ty)
    tl.store(gvalue_ptr + r[:, None] * D + d[None, :], acc.to(gvalue_ptr.dtype.element_ty), mask=r_mask[:, None] & dm)


_KERNEL_FNS = (_msda_fwd_kernel, _msda_bwd_kernel, _msda_gather_kernel)
#: name -> the kernel wrapped by ``triton.jit`` (empty without triton). Wrapped at import, like any ``@triton.jit``:
#: triton decides between its interpreter and its compiler when it wraps a function (and wraps its own
#: ``triton.language`` helpers when triton is first imported), from ``TRITON_INTERPRET`` at that moment.
KERNELS = {fn.__name__: triton.jit(fn) for fn in _KERNEL_FNS} if triton is not None else {}
#: True when the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` when triton was imported): then they
#: run on CPU tensors (and, slowly, on CUDA tensors: the interpreter copies them to the host and back).
INTERPRET = bool(KERNELS) and type(KERNELS['_msda_fwd_kernel']).__name__ == 'InterpretedFunction'


def _kernels() -> dict:
    if triton is None:
        raise RuntimeError(f"ms_deform_attn: backend 'triton' needs the triton package, which does not import "
                           f"({available()[1]}); install it (pip install triton; CUDA builds of torch bring it)")
    return KERNELS


@contextlib.contextmanager
def _launching(device: torch.device):
    """Device guard for CUDA; in interpreter mode numpy's warnings about NaN/inf arithmetic are silenced (the
    kernels compute with non-finite values on purpose, e.g. ``x - x == 0`` as a finiteness test)."""
    with contextlib.ExitStack() as stack:
        if device.type == 'cuda':
            stack.enter_context(torch.cuda.device(device))
        if INTERPRET:
            import numpy as np
            stack.enter_context(np.errstate(all='ignore'))
        yield


def check_device(device: torch.device) -> None:
    """Raise unless the Triton kernels can run on ``device``: CUDA (compiled, or interpreted when INTERPRET), CPU
    only in interpreter mode."""
    _kernels()
    if device.type == 'cuda' or (device.type == 'cpu' and INTERPRET):
        return
    if device.type == 'cpu':
        raise ValueError("ms_deform_attn: backend 'triton' runs on CPU tensors only in Triton's interpreter, which "
                         "is off in this process; set TRITON_INTERPRET=1 in the environment before triton is first "
                         "imported (slow, meant for tests), or move the tensors to a GPU, or use backend='cpu'")
    raise ValueError(f"ms_deform_attn: backend 'triton' needs CUDA tensors (or CPU tensors under "
                     f"TRITON_INTERPRET=1), got {device}; move the tensors or use backend='reference'")


def _tiles(lq: int, d: int, tile: int) -> tuple[int, int]:
    block_d = triton.next_power_of_2(max(d, 1))
    block_q = max(1, min(tile // block_d, triton.next_power_of_2(max(lq, 1))))
    return block_q, block_d


def forward(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
            sampling_locations: torch.Tensor, attention_weights: torch.Tensor, softmax: bool = False) -> torch.Tensor:
    """(N, Lq, M * D) in the value dtype. Locations/weights float32 (float64 for float64 values), all contiguous;
    with ``softmax=True`` the weights are logits (softmax over L * P per (query, head) inside the kernel)."""
    check_device(value.device)
    n, s, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    out = torch.empty((n, lq, m * d), dtype=value.dtype, device=value.device)
    if out.numel() == 0:
        return out
    if n_levels == 0 or n_points == 0:
        return out.zero_()
    k = _kernels()
    block_q, block_d = _tiles(lq, d, FWD_TILE)
    n_qtiles = triton.cdiv(lq, block_q)
    with _launching(value.device):
        k['_msda_fwd_kernel'][(n * n_qtiles, m)](
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights, out,
            s, lq, m, d, n_qtiles, L=n_levels, P=n_points, SOFTMAX=bool(softmax), BLOCK_Q=block_q, BLOCK_D=block_d,
            BLOCK_LP=triton.next_power_of_2(n_levels * n_points), num_warps=NUM_WARPS)
    return out


def backward(grad_output: torch.Tensor, value: torch.Tensor, spatial_shapes: torch.Tensor,
             level_start_index: torch.Tensor, sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
             softmax: bool = False, deterministic: bool | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_value, grad_sampling_locations, grad_attention_weights) for a contiguous (N, Lq, M * D) grad_output of
    the value dtype. ``deterministic``: None follows ``torch.are_deterministic_algorithms_enabled()``; True sums the
    value gradient without atomics (sort + segment gather, bitwise reproducible); False uses atomics. With
    ``softmax=True`` the third gradient is that of the logits."""
    check_device(value.device)
    if deterministic is None:
        deterministic = torch.are_deterministic_algorithms_enabled()
    n, s, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    acc_dtype = sampling_locations.dtype  # float32, or float64 for float64 values
    grad_loc = torch.empty_like(sampling_locations)
    grad_attn = torch.empty_like(attention_weights)
    if n * lq * m * n_levels * n_points == 0 or d == 0:
        return torch.zeros_like(value), grad_loc.zero_(), grad_attn.zero_()
    k = _kernels()
    block_q, block_d = _tiles(lq, d, BWD_TILE)
    n_qtiles = triton.cdiv(lq, block_q)
    n_rows = n * s * m
    dev = value.device
    if deterministic:
        key_dtype = torch.int32 if n_rows < 2 ** 31 - 1 else torch.int64
        n_entries = n * lq * m * n_levels * n_points * 4
        keys = torch.empty(n_entries, dtype=key_dtype, device=dev)
        coefs = torch.empty(n_entries, dtype=acc_dtype, device=dev)
        gvalue_acc = coefs  # unused by the kernel in this mode
    else:
        keys = coefs = None
        gvalue_acc = torch.zeros(value.shape, dtype=acc_dtype, device=dev)
    with _launching(dev):
        k['_msda_bwd_kernel'][(n * n_qtiles, m)](
            grad_output, value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
            gvalue_acc, grad_loc, grad_attn, keys if deterministic else gvalue_acc,
            coefs if deterministic else gvalue_acc,
            s, lq, m, d, n_qtiles, n_rows, L=n_levels, P=n_points, SOFTMAX=bool(softmax),
            DETERMINISTIC=bool(deterministic), BLOCK_Q=block_q, BLOCK_D=block_d,
            BLOCK_LP=triton.next_power_of_2(n_levels * n_points), num_warps=NUM_WARPS)
        if not deterministic:
            grad_value = gvalue_acc if gvalue_acc.dtype == value.dtype else gvalue_acc.to(value.dtype)
            return grad_value, grad_loc, grad_attn
        sorted_keys, perm = torch.sort(keys, stable=True)
        offsets = torch.searchsorted(sorted_keys, torch.arange(n_rows + 1, dtype=key_dtype, device=dev))
        grad_value = torch.empty_like(value)
        block_r = max(1, min(GATHER_TILE // block_d, 64))
        k['_msda_gather_kernel'][(triton.cdiv(n_rows, block_r),)](
            grad_output, perm, coefs, offsets, grad_value, n_rows, d, LP4=n_levels * n_points * 4,
            BLOCK_R=block_r, BLOCK_D=block_d, num_warps=NUM_WARPS)
    return grad_value, grad_loc, grad_attn

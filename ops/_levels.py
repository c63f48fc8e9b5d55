"""Host-side check of the level table (``spatial_shapes``, ``level_start_index``) with exact Python ints.

Shared by the op wrapper (CPU tensors), the reference (which reads the table anyway) and ``MSDeformAttn``.
Python ints do not overflow, so a table whose H*W would wrap around int64 to the right S is caught here
(the CPU kernel checks the same with overflow-checked C++; the CUDA kernel inside the kernel, see
ops/README.md). Cost: a few microseconds for L = 3 levels.
"""
from __future__ import annotations

INT64_MAX = 2 ** 63 - 1


def check_level_table(shapes: list, starts: list | None, s: int) -> list[int]:
    """Validate (H, W) per level against S and the start offsets; return the level sizes H*W.

    Args:
        shapes: [[H, W], ...] as Python ints (``spatial_shapes.tolist()`` of a CPU tensor).
        starts: ``level_start_index.tolist()``, or None to skip that check.
        s: the S dimension of value.

    Raises:
        ValueError: a level with H <= 0 or W <= 0, H*W or the sum over levels beyond int64, a sum different
            from S, or start offsets that are not the exclusive cumulative sums. The message names the level.
    """
    sizes, total = [], 0
    for lvl, (h, w) in enumerate(shapes):
        if h <= 0 or w <= 0:
            raise ValueError(f'ms_deform_attn: level {lvl} of spatial_shapes is (H, W) = ({h}, {w}); every level '
                             f'needs H > 0 and W > 0')
        hw = h * w
        if hw > INT64_MAX:
            raise ValueError(f'ms_deform_attn: level {lvl} of spatial_shapes: H*W = {h}*{w} = {hw} overflows int64; '
                             f'spatial_shapes must hold the real (H, W) of each level, e.g. '
                             f'torch.as_tensor([(h, w) for each level], dtype=torch.long)')
        total += hw
        if total > INT64_MAX:
            raise ValueError(f'ms_deform_attn: the level sizes H*W of spatial_shapes up to level {lvl} sum to '
                             f'{total}, which overflows int64; they must sum to S = {s} (value.shape[1])')
        sizes.append(hw)
    if total != s:
        raise ValueError(f'ms_deform_attn: spatial_shapes {shapes} hold {total} positions but value has S={s}; '
                         f'they must match (sum of H*W over levels)')
    if starts is not None:
        expected = [sum(sizes[:i]) for i in range(len(sizes))]
        if list(starts) != expected:
            lvl = next(i for i, (a, b) in enumerate(zip(starts, expected)) if a != b)
            raise ValueError(f'ms_deform_attn: level_start_index {list(starts)} must be the start offsets {expected} '
                             f'of the levels of spatial_shapes (level {lvl} starts at {expected[lvl]}, not '
                             f'{starts[lvl]})')
    return sizes

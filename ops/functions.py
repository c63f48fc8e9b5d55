"""``ms_deform_attn``: input validation, backend choice and the registered torch op.

Backends (``backend=`` argument, else the env var ``VIT_ADAPTER_MSDA_BACKEND``, else ``'auto'``):

- ``'reference'``: pure PyTorch (``grid_sample``), ``ops.reference``; ground truth, any device.
- ``'cpu'``: compiled C++/OpenMP kernel (forward and deterministic backward), CPU tensors.
- ``'cuda'``: compiled CUDA kernel (fp32/fp16/bf16/fp64, fp32 accumulation), CUDA tensors.
- ``'triton'``: Triton kernels (``ops.triton_msda``; fp32/fp16/bf16/fp64, fp32 accumulation, deterministic backward
  under ``torch.use_deterministic_algorithms(True)``, softmax fused when ``softmax=True``), CUDA tensors when triton
  imports; CPU tensors only in Triton's interpreter (``TRITON_INTERPRET=1`` before triton is imported: tests). Only
  when asked for (argument or env var): ``'auto'`` never picks it.
- ``'auto'``: ``'cpu'`` on CPU tensors, ``'cuda'`` on CUDA tensors, ``'reference'`` elsewhere. If the kernel
  cannot be built (no compiler, no toolkit, build error) it warns once and uses the reference. An
  explicitly requested kernel that cannot be built raises instead.

The compiled kernels are one torch op, ``torch.ops.vit_adapter.ms_deform_attn`` (with
``vit_adapter::ms_deform_attn_backward``), registered with ``torch.library.custom_op`` plus fake (meta)
kernels and autograd, so ``torch.compile(fullgraph=True)`` keeps a model that uses it in one graph. The Triton
kernels are a second such op, ``torch.ops.vit_adapter.ms_deform_attn_triton`` (with a ``softmax`` flag; backward
``vit_adapter::ms_deform_attn_triton_backward``, which reads ``torch.are_deterministic_algorithms_enabled()`` when it
runs).
Kernels build on first use (``ops._build``), never at import. The first choice of a backend for a
(device, dtype) is logged once on the ``ops.functions`` logger (INFO).
"""
from __future__ import annotations

import logging
import os
import warnings

import torch

from . import _build
from ._levels import check_level_table
from .reference import ms_deform_attn_reference

logger = logging.getLogger(__name__)

ENV_VAR = 'VIT_ADAPTER_MSDA_BACKEND'
BACKENDS = ('auto', 'reference', 'cpu', 'cuda', 'triton')
_FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)

_chosen: dict[tuple[str, str, str], str] = {}
_failed: dict[str, str] = {}  # kernel kind -> build error (auto mode falls back, warned once)


def _requested(backend: str | None) -> str:
    name = backend if backend is not None else (os.environ.get(ENV_VAR) or 'auto')
    name = name.strip().lower()
    if name not in BACKENDS:
        source = 'backend argument' if backend is not None else f'env var {ENV_VAR}'
        raise ValueError(f'ms_deform_attn: unknown backend {name!r} from the {source}; choose one of {BACKENDS}')
    return name


def _resolve(device_type: str, dtype_name: str, requested: str) -> str:
    """Backend actually used for (device type, value dtype, requested name); builds the kernel if needed."""
    key = (device_type, dtype_name, requested)
    if key in _chosen:
        return _chosen[key]
    if requested == 'reference':
        chosen = 'reference'
    elif requested in ('cpu', 'cuda'):
        if device_type != requested:
            raise ValueError(f"ms_deform_attn: backend {requested!r} needs {requested} tensors but value is on "
                             f"{device_type}; move the tensors or use backend='auto'")
        try:
            _build.load_extension(requested)
        except _build.ExtensionBuildError as exc:
            raise RuntimeError(f'ms_deform_attn: backend {requested!r} was requested but its kernel is '
                               f'unavailable: {exc}. Use backend="reference" (or {ENV_VAR}=reference).') from exc
        chosen = requested
    elif requested == 'triton':
        from . import triton_msda  # the kernels, imported when first asked for
        ok, why = triton_msda.available()
        if not ok:
            raise RuntimeError(f"ms_deform_attn: backend 'triton' was requested but triton does not import ({why}); "
                               f"install it (pip install triton; CUDA builds of torch bring it) or use "
                               f"backend='auto' (or {ENV_VAR}=auto)")
        triton_msda.check_device(torch.device(device_type))  # CPU only in Triton's interpreter: ValueError
        chosen = 'triton'
    else:  # auto
        chosen = 'reference'
        if device_type in ('cpu', 'cuda'):
            if device_type in _failed:
                chosen = 'reference'
            else:
                try:
                    _build.load_extension(device_type)
                    chosen = device_type
                except _build.ExtensionBuildError as exc:
                    _failed[device_type] = str(exc)
                    warnings.warn(f'ms_deform_attn: the compiled {device_type} kernel is unavailable ({exc}); '
                                  f'falling back to the slow pure-PyTorch reference. Set {ENV_VAR}=reference to '
                                  f'silence this, or fix the build (see ops/README.md).', RuntimeWarning,
                                  stacklevel=4)
    _chosen[key] = chosen
    logger.info('ms_deform_attn: using the %r backend for %s %s tensors (requested %r)', chosen, device_type,
                dtype_name, requested)
    return chosen


# Called once at trace time by torch.compile and baked into the graph as a constant.
_resolve_traced = torch._dynamo.assume_constant_result(_resolve)


def current_backend(device: torch.device | str = 'cpu', dtype: torch.dtype = torch.float32,
                    backend: str | None = None) -> str:
    """Name of the backend ``ms_deform_attn`` uses for tensors on ``device`` with value ``dtype``.

    Resolves (and, for compiled kernels, builds) exactly as a call would. Returns 'reference', 'cpu', 'cuda' or
    'triton' (only when asked for).
    """
    return _resolve(torch.device(device).type, str(dtype), _requested(backend))


def reset_backend_cache() -> None:
    """Forget the backend choices and build failures (for tests and after changing the env var)."""
    _chosen.clear()
    _failed.clear()


# ----------------------------------------------------------------------------------------------------------
# The registered op: compiled kernels only (the reference is plain PyTorch and traces by itself).


@torch.library.custom_op('vit_adapter::ms_deform_attn', mutates_args=(), device_types=('cpu', 'cuda'))
def _msda_op(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
             sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    ext = _build.load_extension(value.device.type)
    return ext.forward(value.contiguous(), spatial_shapes.contiguous(), level_start_index.contiguous(),
                       sampling_locations.contiguous(), attention_weights.contiguous())


@_msda_op.register_fake
def _(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    n, _, m, d = value.shape
    return value.new_empty((n, sampling_locations.shape[1], m * d))


@torch.library.custom_op('vit_adapter::ms_deform_attn_backward', mutates_args=(), device_types=('cpu', 'cuda'))
def _msda_backward_op(grad_output: torch.Tensor, value: torch.Tensor, spatial_shapes: torch.Tensor,
                      level_start_index: torch.Tensor, sampling_locations: torch.Tensor,
                      attention_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ext = _build.load_extension(value.device.type)
    grads = ext.backward(grad_output.contiguous(), value.contiguous(), spatial_shapes.contiguous(),
                         level_start_index.contiguous(), sampling_locations.contiguous(),
                         attention_weights.contiguous())
    return grads[0], grads[1], grads[2]


@_msda_backward_op.register_fake
def _(grad_output, value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    return torch.empty_like(value), torch.empty_like(sampling_locations), torch.empty_like(attention_weights)


# The Triton kernels (ops.triton_msda): a second op, so that the backend choice stays baked into traced graphs.
# ``softmax``: attention_weights are logits, softmax over the L*P points of each (query, head) fused in the kernels.


@torch.library.custom_op('vit_adapter::ms_deform_attn_triton', mutates_args=(), device_types=('cpu', 'cuda'))
def _msda_triton_op(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                    sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                    softmax: bool = False) -> torch.Tensor:
    from . import triton_msda
    return triton_msda.forward(value.contiguous(), spatial_shapes.contiguous(), level_start_index.contiguous(),
                               sampling_locations.contiguous(), attention_weights.contiguous(), softmax=softmax)


@_msda_triton_op.register_fake
def _(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, softmax=False):
    n, _, m, d = value.shape
    return value.new_empty((n, sampling_locations.shape[1], m * d))


@torch.library.custom_op('vit_adapter::ms_deform_attn_triton_backward', mutates_args=(),
                         device_types=('cpu', 'cuda'))
def _msda_triton_backward_op(grad_output: torch.Tensor, value: torch.Tensor, spatial_shapes: torch.Tensor,
                             level_start_index: torch.Tensor, sampling_locations: torch.Tensor,
                             attention_weights: torch.Tensor, softmax: bool = False
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from . import triton_msda
    # deterministic (no atomics) when torch.use_deterministic_algorithms(True) is on at the time the backward runs
    return triton_msda.backward(grad_output.contiguous(), value.contiguous(), spatial_shapes.contiguous(),
                                level_start_index.contiguous(), sampling_locations.contiguous(),
                                attention_weights.contiguous(), softmax=softmax)


@_msda_triton_backward_op.register_fake
def _(grad_output, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, softmax=False):
    return torch.empty_like(value), torch.empty_like(sampling_locations), torch.empty_like(attention_weights)


def _setup_context(ctx, inputs, output):
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = inputs
    ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)


def _backward(ctx, grad_output):
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
    grad_value, grad_loc, grad_attn = _msda_backward_op(grad_output, value, spatial_shapes, level_start_index,
                                                        sampling_locations, attention_weights)
    return (grad_value if ctx.needs_input_grad[0] else None, None, None,
            grad_loc if ctx.needs_input_grad[3] else None, grad_attn if ctx.needs_input_grad[4] else None)


_msda_op.register_autograd(_backward, setup_context=_setup_context)


def _triton_setup_context(ctx, inputs, output):
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights, softmax = inputs
    ctx.softmax = softmax
    ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)


def _triton_backward(ctx, grad_output):
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
    grad_value, grad_loc, grad_attn = _msda_triton_backward_op(grad_output, value, spatial_shapes, level_start_index,
                                                               sampling_locations, attention_weights, ctx.softmax)
    return (grad_value if ctx.needs_input_grad[0] else None, None, None,
            grad_loc if ctx.needs_input_grad[3] else None, grad_attn if ctx.needs_input_grad[4] else None, None)


_msda_triton_op.register_autograd(_triton_backward, setup_context=_triton_setup_context)


def softmax_points(x: torch.Tensor) -> torch.Tensor:
    """``x.softmax(-1)`` over the short (levels x points) axis of the attention logits.

    On CPU in float32/float64 it is written out (max, exp, sum, divide): ATen's CPU softmax runs a scalar loop
    per row when the row is this short, and the four vectorised ops are 4.5x faster forward and 1.3-1.9x
    forward+backward (a (1, 5376, 6, 4) extractor call: 0.29 vs 1.29 ms). Elsewhere (CUDA: one fused kernel;
    reduced precision: ATen accumulates in float32) the built-in softmax is used.
    """
    if x.device.type != 'cpu' or x.dtype not in (torch.float32, torch.float64):
        return x.softmax(-1)
    e = (x - x.amax(-1, keepdim=True).detach()).exp()  # the shift cancels in the gradient: no need to track it
    return e / e.sum(-1, keepdim=True)


# ----------------------------------------------------------------------------------------------------------
# Validation (metadata, plus the small level table of CPU tensors outside tracing).


def _validate(value, spatial_shapes, level_start_index, sampling_locations, attention_weights) -> None:
    args = dict(value=value, spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                sampling_locations=sampling_locations, attention_weights=attention_weights)
    for name, t in args.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f'ms_deform_attn: {name} must be a torch.Tensor, got {type(t).__name__}')
    if value.dim() != 4:
        raise ValueError(f'ms_deform_attn: value must be (N, S, M, D), got shape {tuple(value.shape)}')
    n, s, m, d = value.shape
    if sampling_locations.dim() != 6 or sampling_locations.shape[-1] != 2:
        raise ValueError(f'ms_deform_attn: sampling_locations must be (N, Lq, M, L, P, 2), got shape '
                         f'{tuple(sampling_locations.shape)}')
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    if sampling_locations.shape[0] != n or sampling_locations.shape[2] != m:
        raise ValueError(f'ms_deform_attn: sampling_locations {tuple(sampling_locations.shape)} must have N={n} '
                         f'and M={m} like value {tuple(value.shape)}')
    if tuple(attention_weights.shape) != (n, lq, m, n_levels, n_points):
        raise ValueError(f'ms_deform_attn: attention_weights must be (N, Lq, M, L, P) = '
                         f'{(n, lq, m, n_levels, n_points)}, got {tuple(attention_weights.shape)}')
    if tuple(spatial_shapes.shape) != (n_levels, 2):
        raise ValueError(f'ms_deform_attn: spatial_shapes must be (L, 2) = ({n_levels}, 2) (one (H, W) per level '
                         f'of sampling_locations), got {tuple(spatial_shapes.shape)}')
    if tuple(level_start_index.shape) != (n_levels,):
        raise ValueError(f'ms_deform_attn: level_start_index must be (L,) = ({n_levels},), got '
                         f'{tuple(level_start_index.shape)}')
    if spatial_shapes.dtype != torch.int64:
        raise TypeError(f'ms_deform_attn: spatial_shapes must be int64 (torch.long), got {spatial_shapes.dtype}; '
                        f'use torch.as_tensor(shapes, dtype=torch.long)')
    if level_start_index.dtype != torch.int64:
        raise TypeError(f'ms_deform_attn: level_start_index must be int64 (torch.long), got '
                        f'{level_start_index.dtype}')
    if value.dtype not in _FLOAT_DTYPES:
        raise TypeError(f'ms_deform_attn: value must be float64/32/16 or bfloat16, got {value.dtype}')
    # float64/float32 values need locations and weights of the same dtype; reduced-precision values accept
    # float32 locations/weights (recommended: bf16 resolves only 0.5 px on a 128-pixel map) or their own dtype.
    allowed = (value.dtype,) if value.dtype in (torch.float64, torch.float32) else (torch.float32, value.dtype)
    for name in ('sampling_locations', 'attention_weights'):
        if args[name].dtype not in allowed:
            raise TypeError(f'ms_deform_attn: {name} has dtype {args[name].dtype} but value is {value.dtype}; '
                            f'expected one of {[str(a) for a in allowed]}')
    for name in ('spatial_shapes', 'level_start_index', 'sampling_locations', 'attention_weights'):
        if args[name].device != value.device:
            raise ValueError(f'ms_deform_attn: {name} is on {args[name].device} but value is on {value.device}; '
                             f'put all inputs on one device')
    # The level table (H, W per level; start offsets) keeps the kernels in bounds. CPU tensors: checked here
    # with exact Python ints (H*W cannot wrap around int64), a ValueError before any kernel runs; skipped while
    # tracing (data-dependent), where the CPU kernel's own overflow-checked C++ check raises the same errors.
    # CUDA tensors: never read on the host (that would synchronise with the GPU); the CUDA kernel checks the
    # table itself and stops with a device-side assertion (see ops/README.md). The reference, on any device,
    # reads the table anyway and checks it with the same function.
    if spatial_shapes.device.type == 'cpu' and not torch.compiler.is_compiling():
        check_level_table(spatial_shapes.tolist(), level_start_index.tolist(), s)


def _reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    # The reference itself computes reduced-precision values in float32 and returns the value dtype.
    return ms_deform_attn_reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)


def ms_deform_attn(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                   sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                   backend: str | None = None, softmax: bool = False) -> torch.Tensor:
    """Multi-scale deformable attention.

    Args:
        value: (N, S, M, D) values of all levels, flattened and concatenated (float64/32/16, bfloat16).
        spatial_shapes: (L, 2) int64, (H, W) of each level; sum(H*W) == S.
        level_start_index: (L,) int64, offset of each level in S.
        sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y) in [0, 1]; outside samples zeros.
            Same dtype as value, or float32 for float16/bfloat16 values.
        attention_weights: (N, Lq, M, L, P), dtype rule as for sampling_locations.
        backend: 'auto' | 'reference' | 'cpu' | 'cuda' | 'triton'; default: env var ``VIT_ADAPTER_MSDA_BACKEND`` or
            'auto'.
        softmax: attention_weights are logits; the op first takes their softmax over the L * P points of each
            (query, head) (``softmax_points``). Fused into the kernels with the 'triton' backend; the other backends
            compute it in PyTorch first (same result up to rounding).

    Returns:
        (N, Lq, M * D) in the dtype of value.

    Raises:
        ValueError: mismatched shapes or devices, level sizes not summing to S or beyond int64 (CPU tensors;
            on CUDA the kernel checks the table and fails with a device-side assertion, the 'triton' kernels give
            NaN), unknown backend, 'triton' on CPU tensors outside Triton's interpreter.
        TypeError: non-tensor inputs, non-int64 spatial_shapes / level_start_index, wrong float dtypes.
        RuntimeError: an explicitly requested compiled backend cannot be built (or triton does not import).
    """
    _validate(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    requested = _requested(backend)
    if torch.compiler.is_compiling():
        chosen = _resolve_traced(value.device.type, str(value.dtype), requested)
    else:
        chosen = _resolve(value.device.type, str(value.dtype), requested)
    coord = torch.float64 if value.dtype == torch.float64 else torch.float32
    if chosen == 'triton':
        return _msda_triton_op(value, spatial_shapes, level_start_index, sampling_locations.to(coord),
                               attention_weights.to(coord), bool(softmax))
    if softmax:
        attention_weights = softmax_points(attention_weights.flatten(-2)).view_as(attention_weights)
    if chosen == 'reference':
        return _reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    return _msda_op(value, spatial_shapes, level_start_index, sampling_locations.to(coord),
                    attention_weights.to(coord))

// Multi-scale deformable attention, CUDA kernels (forward and backward).
//
// value float64 / float32 / float16 / bfloat16; sampling locations and attention weights float32
// (float64 for float64 values); all accumulation in float32 (float64 for float64 values).
//
// One warp per (n, query, head): lane d handles channels d, d + 32, ... (coalesced over D). The bilinear
// footprint of each (level, point) is computed by every lane (cheap, no shared memory).
// Backward: the same warp computes the location / weight gradients with warp-shuffle reductions and
// scatters the value gradient with atomicAdd into an accumulation buffer of the accumulation dtype
// (float32 for reduced-precision values, cast at the end). atomicAdd makes the value gradient's
// summation order nondeterministic; the op reports this to torch.use_deterministic_algorithms(True).
//
// Written against torch 2.x ATen: no THC, no Tensor::type(), no Tensor::data<T>().
#include "ms_deform_attn.h"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>
#include <type_traits>

namespace vit_adapter {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

template <typename scalar_t>
using acc_type_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

template <typename acc_t>
__device__ __forceinline__ acc_t nan_value() {
  return static_cast<acc_t>(NAN);  // math.h's quiet NaN (a constant expression, usable in device code)
}

template <typename acc_t>
struct Footprint {
  int64_t row[4];
  acc_t bw[4];
  bool ok[4];
  acc_t lh, lw;
};

template <typename acc_t>
__device__ __forceinline__ bool footprint(acc_t x, acc_t y, int64_t H, int64_t W, Footprint<acc_t>& f) {
  const acc_t h_im = y * static_cast<acc_t>(H) - acc_t(0.5);
  const acc_t w_im = x * static_cast<acc_t>(W) - acc_t(0.5);
  if (!(h_im > acc_t(-1) && w_im > acc_t(-1) && h_im < static_cast<acc_t>(H) && w_im < static_cast<acc_t>(W))) {
    return false;
  }
  const acc_t hf = floor(h_im), wf = floor(w_im);
  const int64_t h0 = static_cast<int64_t>(hf), w0 = static_cast<int64_t>(wf);
  f.lh = h_im - hf;
  f.lw = w_im - wf;
  const acc_t hh = acc_t(1) - f.lh, hw = acc_t(1) - f.lw;
  f.bw[0] = hh * hw;
  f.bw[1] = hh * f.lw;
  f.bw[2] = f.lh * hw;
  f.bw[3] = f.lh * f.lw;
  const bool top = h0 >= 0, bottom = h0 + 1 < H, left = w0 >= 0, right = w0 + 1 < W;
  f.ok[0] = top && left;
  f.ok[1] = top && right;
  f.ok[2] = bottom && left;
  f.ok[3] = bottom && right;
  f.row[0] = h0 * W + w0;
  f.row[1] = h0 * W + w0 + 1;
  f.row[2] = (h0 + 1) * W + w0;
  f.row[3] = (h0 + 1) * W + w0 + 1;
  return true;
}

// Non-finite locations / weights: the same semantics as the CPU kernel and the reference (see
// ms_deform_attn_cpu.cpp, coords_finite): a NaN/inf coordinate samples NaN, a non-finite weight on a zero
// sample gives NaN; only evaluated for points footprint() rejects.
template <typename acc_t>
__device__ __forceinline__ bool coords_finite(acc_t x, acc_t y, int64_t H, int64_t W, bool& h_ok, bool& w_ok) {
  h_ok = isfinite(y * static_cast<acc_t>(H) - acc_t(0.5));
  w_ok = isfinite(x * static_cast<acc_t>(W) - acc_t(0.5));
  return h_ok && w_ok;
}

// The level table is checked inside the kernels, so the op needs no device-to-host copy (no host sync):
// every level H > 0, W > 0, H*W without int64 overflow, start offsets the exclusive cumulative sum, total S.
// Every warp checks it (L iterations, the table is in cache) before touching value; a bad table stops the
// kernel with a device-side assertion (reported as a CUDA error by the next synchronising call).
__device__ __forceinline__ bool levels_valid(const int64_t* __restrict__ shapes, const int64_t* __restrict__ starts,
                                             int64_t L, int64_t S) {
  int64_t total = 0;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
    if (H <= 0 || W <= 0 || starts[l] != total) return false;
    const unsigned long long uh = static_cast<unsigned long long>(H), uw = static_cast<unsigned long long>(W);
    if (__umul64hi(uh, uw) != 0ull) return false;  // H*W overflows 64 bits
    if (uh * uw > static_cast<unsigned long long>(S - total)) return false;  // also catches >= 2^63
    total += static_cast<int64_t>(uh * uw);
  }
  return total == S;
}

#define MSDA_CHECK_LEVELS(shapes, starts, L, S)                                                           \
  {                                                                                                        \
    const bool levels_ok = levels_valid(shapes, starts, L, S);                                             \
    CUDA_KERNEL_ASSERT_MSG(levels_ok, "ms_deform_attn: spatial_shapes / level_start_index do not describe S " \
                                      "(H, W > 0, H*W without overflow, sum S, starts the cumulative sums)"); \
    if (!levels_ok) return;                                                                                \
  }

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename scalar_t, typename acc_t>
__global__ void msda_forward_kernel(const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes,
                                    const int64_t* __restrict__ starts, const acc_t* __restrict__ loc,
                                    const acc_t* __restrict__ attn, scalar_t* __restrict__ out, int64_t N, int64_t S,
                                    int64_t M, int64_t D, int64_t Lq, int64_t L, int64_t P) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (warp >= N * Lq * M) return;  // warp-uniform
  MSDA_CHECK_LEVELS(shapes, starts, L, S);
  const int64_t m = warp % M, nq = warp / M, n = nq / Lq;
  const int64_t rs = M * D;
  const scalar_t* vnm = value + n * S * rs + m * D;
  const acc_t* lp = loc + warp * L * P * 2;
  const acc_t* ap = attn + warp * L * P;
  Footprint<acc_t> f;
  for (int64_t d0 = 0; d0 < D; d0 += kWarp) {
    const int64_t d = d0 + lane;
    const bool active = d < D;
    acc_t acc = 0;
    bool poison = false;  // a non-finite location, or a non-finite weight on a zero sample: output NaN
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const scalar_t* vl = vnm + starts[l] * rs;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t i = l * P + p;
        if (!footprint<acc_t>(lp[2 * i], lp[2 * i + 1], H, W, f)) {
          bool h_ok, w_ok;
          if (!coords_finite<acc_t>(lp[2 * i], lp[2 * i + 1], H, W, h_ok, w_ok) || !isfinite(ap[i])) poison = true;
          continue;
        }
        const acc_t a = ap[i];
        if (active) {
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            if (f.ok[c]) acc += a * f.bw[c] * static_cast<acc_t>(vl[f.row[c] * rs + d]);
          }
        }
      }
    }
    if (poison) acc = nan_value<acc_t>();
    if (active) out[warp * D + d] = static_cast<scalar_t>(acc);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void msda_backward_kernel(const scalar_t* __restrict__ gout, const scalar_t* __restrict__ value,
                                     const int64_t* __restrict__ shapes, const int64_t* __restrict__ starts,
                                     const acc_t* __restrict__ loc, const acc_t* __restrict__ attn,
                                     acc_t* __restrict__ gvalue, acc_t* __restrict__ gloc,
                                     acc_t* __restrict__ gattn, int64_t N, int64_t S, int64_t M, int64_t D,
                                     int64_t Lq, int64_t L, int64_t P) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (warp >= N * Lq * M) return;  // warp-uniform, so the shuffles below see the full warp
  MSDA_CHECK_LEVELS(shapes, starts, L, S);
  const int64_t m = warp % M, nq = warp / M, n = nq / Lq;
  const int64_t rs = M * D;
  const scalar_t* vnm = value + n * S * rs + m * D;
  acc_t* gvnm = gvalue + n * S * rs + m * D;
  const scalar_t* go = gout + warp * D;
  const acc_t* lp = loc + warp * L * P * 2;
  const acc_t* ap = attn + warp * L * P;
  Footprint<acc_t> f;
  int g_finite = -1;  // whether this warp's grad_output row is finite (warp-uniform); computed on first need
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
    const scalar_t* vl = vnm + starts[l] * rs;
    acc_t* gvl = gvnm + starts[l] * rs;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t i = l * P + p;
      if (!footprint<acc_t>(lp[2 * i], lp[2 * i + 1], H, W, f)) {  // warp-uniform branch
        // Outside the map (zero sample: outputs are pre-zeroed) or a non-finite location (NaN sample).
        bool h_ok, w_ok;
        const bool loc_ok = coords_finite<acc_t>(lp[2 * i], lp[2 * i + 1], H, W, h_ok, w_ok);
        if (g_finite < 0) {
          bool bad = false;
          for (int64_t d = lane; d < D; d += kWarp) bad |= !isfinite(static_cast<acc_t>(go[d]));
          g_finite = __any_sync(0xffffffffu, bad) ? 0 : 1;
        }
        const bool ga_ok = g_finite && isfinite(ap[i]);
        if (lane == 0 && !(loc_ok && ga_ok)) {
          const acc_t nan = nan_value<acc_t>();
          if (!(loc_ok && g_finite)) gattn[warp * L * P + i] = nan;
          if (!(h_ok && ga_ok)) gloc[(warp * L * P + i) * 2] = nan;
          if (!(w_ok && ga_ok)) gloc[(warp * L * P + i) * 2 + 1] = nan;
        }
        continue;
      }
      const acc_t a = ap[i];
      acc_t s[4] = {0, 0, 0, 0};
      for (int64_t d = lane; d < D; d += kWarp) {
        const acc_t g = static_cast<acc_t>(go[d]);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          if (!f.ok[c]) continue;
          s[c] += g * static_cast<acc_t>(vl[f.row[c] * rs + d]);
          atomicAdd(gvl + f.row[c] * rs + d, a * f.bw[c] * g);
        }
      }
#pragma unroll
      for (int c = 0; c < 4; ++c) s[c] = warp_sum(s[c]);
      if (lane == 0) {
        const acc_t hh = acc_t(1) - f.lh, hw = acc_t(1) - f.lw;
        gattn[warp * L * P + i] = f.bw[0] * s[0] + f.bw[1] * s[1] + f.bw[2] * s[2] + f.bw[3] * s[3];
        const acc_t dw = -hh * s[0] + hh * s[1] - f.lh * s[2] + f.lh * s[3];
        const acc_t dh = -hw * s[0] - f.lw * s[1] + hw * s[2] + f.lw * s[3];
        gloc[(warp * L * P + i) * 2] = a * dw * static_cast<acc_t>(W);
        gloc[(warp * L * P + i) * 2 + 1] = a * dh * static_cast<acc_t>(H);
      }
    }
  }
}

int64_t num_blocks(int64_t warps) { return (warps + kWarpsPerBlock - 1) / kWarpsPerBlock; }

void check_cuda_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                       const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                       const at::Tensor& attention_weights) {
  TORCH_CHECK(value.is_cuda() && spatial_shapes.is_cuda() && level_start_index.is_cuda() &&
                  sampling_locations.is_cuda() && attention_weights.is_cuda(),
              "ms_deform_attn (cuda): all inputs must be CUDA tensors");
  TORCH_CHECK(spatial_shapes.device() == value.device() && level_start_index.device() == value.device() &&
                  sampling_locations.device() == value.device() && attention_weights.device() == value.device(),
              "ms_deform_attn (cuda): all inputs must be on the same GPU");
}

}  // namespace

at::Tensor ms_deform_attn_forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                       const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                       const at::Tensor& attention_weights) {
  check_cuda_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const MsdaSizes z =
      ms_deform_attn_check(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const c10::cuda::CUDAGuard guard(value.device());
  auto out = at::empty({z.N, z.Lq, z.M * z.D}, value.options());
  const int64_t warps = z.N * z.Lq * z.M;
  if (warps == 0 || z.D == 0) return out.zero_();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(),
                                  "ms_deform_attn_forward_cuda", [&] {
                                    using acc_t = acc_type_t<scalar_t>;
                                    msda_forward_kernel<scalar_t, acc_t>
                                        <<<num_blocks(warps), kWarp * kWarpsPerBlock, 0, stream>>>(
                                            value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(),
                                            level_start_index.data_ptr<int64_t>(),
                                            sampling_locations.data_ptr<acc_t>(), attention_weights.data_ptr<acc_t>(),
                                            out.data_ptr<scalar_t>(), z.N, z.S, z.M, z.D, z.Lq, z.L, z.P);
                                    C10_CUDA_KERNEL_LAUNCH_CHECK();
                                  });
  return out;
}

std::vector<at::Tensor> ms_deform_attn_backward_cuda(const at::Tensor& grad_output, const at::Tensor& value,
                                                     const at::Tensor& spatial_shapes,
                                                     const at::Tensor& level_start_index,
                                                     const at::Tensor& sampling_locations,
                                                     const at::Tensor& attention_weights) {
  check_cuda_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  TORCH_CHECK(grad_output.is_cuda() && grad_output.device() == value.device(),
              "ms_deform_attn (cuda): grad_output must be on the GPU of value");
  const MsdaSizes z =
      ms_deform_attn_check(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  TORCH_CHECK(grad_output.is_contiguous() && grad_output.scalar_type() == value.scalar_type() &&
                  grad_output.numel() == z.N * z.Lq * z.M * z.D,
              "ms_deform_attn_backward_cuda: grad_output must be a contiguous (N, Lq, M*D) tensor of the value dtype");
  at::globalContext().alertNotDeterministic("ms_deform_attn_backward_cuda (atomicAdd on the value gradient)");
  const c10::cuda::CUDAGuard guard(value.device());
  const auto acc_dtype = sampling_locations.scalar_type();
  auto grad_value = at::zeros(value.sizes(), value.options().dtype(acc_dtype));
  auto grad_loc = at::zeros_like(sampling_locations);
  auto grad_attn = at::zeros_like(attention_weights);
  const int64_t warps = z.N * z.Lq * z.M;
  if (warps > 0 && z.D > 0) {
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(), "ms_deform_attn_backward_cuda", [&] {
          using acc_t = acc_type_t<scalar_t>;
          msda_backward_kernel<scalar_t, acc_t><<<num_blocks(warps), kWarp * kWarpsPerBlock, 0, stream>>>(
              grad_output.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(),
              level_start_index.data_ptr<int64_t>(), sampling_locations.data_ptr<acc_t>(),
              attention_weights.data_ptr<acc_t>(), grad_value.data_ptr<acc_t>(), grad_loc.data_ptr<acc_t>(),
              grad_attn.data_ptr<acc_t>(), z.N, z.S, z.M, z.D, z.Lq, z.L, z.P);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  if (grad_value.scalar_type() != value.scalar_type()) grad_value = grad_value.to(value.scalar_type());
  return {grad_value, grad_loc, grad_attn};
}

}  // namespace vit_adapter

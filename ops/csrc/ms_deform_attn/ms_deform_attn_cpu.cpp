// Multi-scale deformable attention, CPU kernels (forward and backward), multi-threaded with
// at::parallel_for (OpenMP underneath; compile with -fopenmp).
//
// Layout: value is (N, S, M, D), so for one (n, s, m) the D channels are contiguous and every inner loop
// runs over D (vectorised by the compiler). Bilinear corner offsets and weights are computed once per
// (query, head, level, point) and reused across the D loop.
//
// Threading:
//   forward  -- parallel over (n, query); each thread writes its own output rows.
//   backward -- parallel over (n, head, level). One task owns the value-gradient rows of level l in the
//               column slice of head m of batch n, and the location/weight gradients of that level, and
//               walks the queries in a fixed order. No two threads write the same value, no atomics, and
//               the summation order does not depend on the thread count: the backward is bitwise
//               deterministic (and identical for any number of threads).
//               float32/float64: the task reads value and accumulates into grad_value in place; each
//               gradient row is zeroed on its first touch (one byte per row records it), so it is written
//               while hot in cache instead of in a separate zeroing pass. float16/bfloat16: the task works on
//               dense float32 copies of its slice and converts once at the end.
//               The per-query streams of one task (locations, weights, grad_output and the two small
//               gradients) are strided by heads x levels; they are prefetched a few queries ahead (about
//               10% on the 1024x1024 ViT-Adapter-S calls, measured on a 2-core Zen 4).
#include "ms_deform_attn.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace vit_adapter {
namespace {

// Heap buffer aligned to 64 bytes (a cache line / one AVX-512 vector): std::vector only guarantees 16,
// and unaligned 64-byte accesses straddle two cache lines.
template <typename T>
class AlignedBuffer {
 public:
  T* data() { return ptr_; }
  void resize(int64_t n) {
    if (n > cap_) {
      raw_.reset(new char[n * sizeof(T) + 64]);
      ptr_ = reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(raw_.get()) + 63) & ~uintptr_t(63));
      cap_ = n;
    }
  }

 private:
  std::unique_ptr<char[]> raw_;
  T* ptr_ = nullptr;
  int64_t cap_ = 0;
};

template <typename scalar_t>
using coord_type_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// Bilinear footprint of one sampling point on one level.
template <typename coord_t>
struct Footprint {
  int64_t row[4];   // row index (h * W + w) inside the level, valid only where ok[c]
  coord_t bw[4];    // bilinear weights of the four corners (00, 01, 10, 11)
  bool ok[4];       // corner inside the map
  coord_t lh, lw;   // fractional parts
  bool all_ok;
};

// Returns false when the point lies fully outside (h_im, w_im not in (-1, H) x (-1, W)).
template <typename coord_t>
inline bool footprint(coord_t x, coord_t y, int64_t H, int64_t W, Footprint<coord_t>& f) {
  const coord_t h_im = y * static_cast<coord_t>(H) - coord_t(0.5);
  const coord_t w_im = x * static_cast<coord_t>(W) - coord_t(0.5);
  if (!(h_im > coord_t(-1) && w_im > coord_t(-1) && h_im < static_cast<coord_t>(H) &&
        w_im < static_cast<coord_t>(W))) {
    return false;
  }
  const coord_t hf = std::floor(h_im), wf = std::floor(w_im);
  const int64_t h0 = static_cast<int64_t>(hf), w0 = static_cast<int64_t>(wf);
  f.lh = h_im - hf;
  f.lw = w_im - wf;
  const coord_t hh = coord_t(1) - f.lh, hw = coord_t(1) - f.lw;
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
  f.all_ok = f.ok[0] && f.ok[1] && f.ok[2] && f.ok[3];
  return true;
}

// Non-finite sampling locations and attention weights (one semantics for every backend, the reference's:
// grid_sample turns a NaN/inf coordinate into NaN bilinear weights, so the point samples NaN):
//   - a point whose x or y is NaN or +-inf makes its (query, head) output NaN in every channel, whatever its
//     attention weight; a point outside the map with a non-finite weight does too (weight * 0 = NaN);
//   - backward: such a point adds nothing to grad_value; its weight gradient is NaN; its x gradient is NaN
//     when y (or its weight, or grad_output) is non-finite and 0 otherwise, and vice versa (grid_sample's
//     backward). The checks run only for points footprint() rejects, so the common path is unchanged.
template <typename coord_t>
inline bool coords_finite(coord_t x, coord_t y, int64_t H, int64_t W, bool& h_ok, bool& w_ok) {
  h_ok = std::isfinite(y * static_cast<coord_t>(H) - coord_t(0.5));
  w_ok = std::isfinite(x * static_cast<coord_t>(W) - coord_t(0.5));
  return h_ok && w_ok;
}

// kD > 0: the channel count is a compile-time constant (fully unrolled D loops); kD == 0: runtime D.
template <typename scalar_t, typename coord_t, int kD>
void forward_impl(const scalar_t* __restrict__ value, const int64_t* shapes, const int64_t* starts,
                  const coord_t* __restrict__ loc, const coord_t* __restrict__ attn, scalar_t* __restrict__ out,
                  const MsdaSizes& z) {
  const int64_t N = z.N, S = z.S, M = z.M, D = kD > 0 ? kD : z.D, Lq = z.Lq, L = z.L, P = z.P;
  const int64_t rs = M * D;  // stride between two spatial positions in value
  const int64_t grain = std::max<int64_t>(1, 2048 / std::max<int64_t>(1, M * L * P));
  at::parallel_for(0, N * Lq, grain, [&](int64_t begin, int64_t end) {
    AlignedBuffer<coord_t> acc_buf;
    acc_buf.resize(D);
    coord_t* __restrict__ acc = acc_buf.data();
    Footprint<coord_t> f;
    for (int64_t nq = begin; nq < end; ++nq) {
      const int64_t n = nq / Lq;
      for (int64_t m = 0; m < M; ++m) {
        std::fill(acc, acc + D, coord_t(0));
        const scalar_t* vnm = value + n * S * rs + m * D;
        const int64_t qm = nq * M + m;
        const coord_t* lp = loc + qm * L * P * 2;
        const coord_t* ap = attn + qm * L * P;
        bool poison = false;  // a non-finite location, or a non-finite weight on a zero sample: output NaN
        for (int64_t l = 0; l < L; ++l) {
          const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
          const scalar_t* vl = vnm + starts[l] * rs;
          for (int64_t p = 0; p < P; ++p) {
            const int64_t i = l * P + p;
            if (!footprint<coord_t>(lp[2 * i], lp[2 * i + 1], H, W, f)) {
              bool h_ok, w_ok;
              if (!coords_finite<coord_t>(lp[2 * i], lp[2 * i + 1], H, W, h_ok, w_ok) || !std::isfinite(ap[i])) {
                poison = true;
              }
              continue;
            }
            const coord_t a = ap[i];
            if (f.all_ok) {
              const scalar_t* __restrict__ v0 = vl + f.row[0] * rs;
              const scalar_t* __restrict__ v1 = vl + f.row[1] * rs;
              const scalar_t* __restrict__ v2 = vl + f.row[2] * rs;
              const scalar_t* __restrict__ v3 = vl + f.row[3] * rs;
              const coord_t w0 = a * f.bw[0], w1 = a * f.bw[1], w2 = a * f.bw[2], w3 = a * f.bw[3];
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) {
                acc[d] += w0 * static_cast<coord_t>(v0[d]) + w1 * static_cast<coord_t>(v1[d]) +
                          w2 * static_cast<coord_t>(v2[d]) + w3 * static_cast<coord_t>(v3[d]);
              }
            } else {
              for (int c = 0; c < 4; ++c) {
                if (!f.ok[c]) continue;
                const scalar_t* __restrict__ v = vl + f.row[c] * rs;
                const coord_t w = a * f.bw[c];
#pragma omp simd
                for (int64_t d = 0; d < D; ++d) acc[d] += w * static_cast<coord_t>(v[d]);
              }
            }
          }
        }
        if (poison) std::fill(acc, acc + D, std::numeric_limits<coord_t>::quiet_NaN());
        scalar_t* o = out + qm * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] = static_cast<scalar_t>(acc[d]);
      }
    }
  });
}

// Backward. One task per (n, head, level) owns that slice of grad_value and the location/weight gradients
// of that level's points, and walks the queries in order: deterministic without atomics.
// When scalar_t == coord_t (float32, float64) the task reads value and accumulates into grad_value in place
// (row stride M*D); for float16/bfloat16 it works on dense coord_t copies of the slice (row stride D).
// Gradient rows are zeroed lazily on first touch (a byte per row), so each row is written once, while it is
// hot in cache, instead of a separate zeroing pass; rows no query touched are zeroed at the end.
template <typename scalar_t, typename coord_t, int kD>
void backward_impl(const scalar_t* __restrict__ gout, const scalar_t* __restrict__ value, const int64_t* shapes,
                   const int64_t* starts, const coord_t* __restrict__ loc, const coord_t* __restrict__ attn,
                   scalar_t* __restrict__ gvalue, coord_t* __restrict__ gloc, coord_t* __restrict__ gattn,
                   const MsdaSizes& z) {
  constexpr bool kDirect = std::is_same_v<scalar_t, coord_t>;
  const int64_t N = z.N, S = z.S, M = z.M, D = kD > 0 ? kD : z.D, Lq = z.Lq, L = z.L, P = z.P;
  const int64_t rs = M * D;
  const int64_t qstride = M * L;  // (head, level) blocks of P points between two consecutive queries
  at::parallel_for(0, N * M * L, 1, [&](int64_t begin, int64_t end) {
    // Per-thread buffers persist between calls (no page faults per call).
    static thread_local AlignedBuffer<coord_t> v_buf, gv_buf;
    static thread_local std::vector<uint8_t> touched;
    AlignedBuffer<coord_t> g_buf;
    g_buf.resize(D);
    coord_t* __restrict__ g = g_buf.data();
    Footprint<coord_t> f;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t l = task % L, m = (task / L) % M, n = task / (L * M);
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1], HW = H * W;
      const int64_t off = (n * S + starts[l]) * rs + m * D;
      const scalar_t* src = value + off;
      scalar_t* dst = gvalue + off;
      const coord_t* vl;
      coord_t* gvl;
      int64_t vs;  // row stride of vl / gvl
      if constexpr (kDirect) {
        vl = src;
        gvl = dst;
        vs = rs;
      } else {
        v_buf.resize(HW * D);
        gv_buf.resize(HW * D);
        for (int64_t r = 0; r < HW; ++r) {
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) v_buf.data()[r * D + d] = static_cast<coord_t>(src[r * rs + d]);
        }
        vl = v_buf.data();
        gvl = gv_buf.data();
        vs = D;
      }
      touched.assign(HW, 0);
      uint8_t* __restrict__ tch = touched.data();
      auto row = [&](int64_t r) -> coord_t* {
        coord_t* p = gvl + r * vs;
        if (!tch[r]) {
          tch[r] = 1;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) p[d] = coord_t(0);
        }
        return p;
      };
      const int64_t base = ((n * Lq) * M + m) * L + l;  // (n, q=0, m, l) in units of P points
      for (int64_t q = 0; q < Lq; ++q) {
        const int64_t qml = base + q * qstride;
        const coord_t* lp = loc + qml * P * 2;
        const coord_t* ap = attn + qml * P;
        const scalar_t* go = gout + ((n * Lq + q) * M + m) * D;
        if (q + 4 < Lq) {
          __builtin_prefetch(lp + 4 * qstride * P * 2);
          __builtin_prefetch(ap + 4 * qstride * P);
          for (int64_t b = 0; b < D; b += 64 / int64_t(sizeof(scalar_t))) __builtin_prefetch(go + 4 * rs + b);
          __builtin_prefetch(gloc + (qml + 4 * qstride) * P * 2, 1);
          __builtin_prefetch(gattn + (qml + 4 * qstride) * P, 1);
        }
        coord_t* glp = gloc + qml * P * 2;
        coord_t* gap = gattn + qml * P;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) g[d] = static_cast<coord_t>(go[d]);
        int g_finite = -1;  // whether this query's grad_output row is finite; computed on first need
        for (int64_t p = 0; p < P; ++p) {
          if (!footprint<coord_t>(lp[2 * p], lp[2 * p + 1], H, W, f)) {
            // Outside the map (zero sample) or a non-finite location (NaN sample); see coords_finite.
            bool h_ok, w_ok;
            const bool loc_ok = coords_finite<coord_t>(lp[2 * p], lp[2 * p + 1], H, W, h_ok, w_ok);
            if (g_finite < 0) {
              g_finite = 1;
              for (int64_t d = 0; d < D; ++d) g_finite &= std::isfinite(g[d]) ? 1 : 0;
            }
            const bool ga_ok = g_finite && std::isfinite(ap[p]);  // grad of the sample = grad_output * weight
            const coord_t nan = std::numeric_limits<coord_t>::quiet_NaN();
            gap[p] = loc_ok && g_finite ? coord_t(0) : nan;   // <grad_output, sample>
            glp[2 * p] = h_ok && ga_ok ? coord_t(0) : nan;     // d/dx weighs the corners by y distances
            glp[2 * p + 1] = w_ok && ga_ok ? coord_t(0) : nan; // d/dy by x distances
            continue;
          }
          const coord_t a = ap[p];
          coord_t s[4] = {0, 0, 0, 0};  // s[c] = <grad_out, value at corner c>
          if (f.all_ok) {  // common case: one fused pass over D for the four corners
            const coord_t* __restrict__ v0 = vl + f.row[0] * vs;
            const coord_t* __restrict__ v1 = vl + f.row[1] * vs;
            const coord_t* __restrict__ v2 = vl + f.row[2] * vs;
            const coord_t* __restrict__ v3 = vl + f.row[3] * vs;
            coord_t* __restrict__ g0 = row(f.row[0]);
            coord_t* __restrict__ g1 = row(f.row[1]);
            coord_t* __restrict__ g2 = row(f.row[2]);
            coord_t* __restrict__ g3 = row(f.row[3]);
            const coord_t w0 = a * f.bw[0], w1 = a * f.bw[1], w2 = a * f.bw[2], w3 = a * f.bw[3];
            coord_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int64_t d = 0; d < D; ++d) {
              const coord_t gd = g[d];
              s0 += gd * v0[d];
              s1 += gd * v1[d];
              s2 += gd * v2[d];
              s3 += gd * v3[d];
              g0[d] += w0 * gd;
              g1[d] += w1 * gd;
              g2[d] += w2 * gd;
              g3[d] += w3 * gd;
            }
            s[0] = s0;
            s[1] = s1;
            s[2] = s2;
            s[3] = s3;
          } else {
            for (int c = 0; c < 4; ++c) {
              if (!f.ok[c]) continue;
              const coord_t* __restrict__ v = vl + f.row[c] * vs;
              coord_t* __restrict__ gv = row(f.row[c]);
              const coord_t w = a * f.bw[c];
              coord_t dot = 0;
#pragma omp simd reduction(+ : dot)
              for (int64_t d = 0; d < D; ++d) {
                dot += g[d] * v[d];
                gv[d] += w * g[d];
              }
              s[c] = dot;
            }
          }
          const coord_t hh = coord_t(1) - f.lh, hw = coord_t(1) - f.lw;
          gap[p] = f.bw[0] * s[0] + f.bw[1] * s[1] + f.bw[2] * s[2] + f.bw[3] * s[3];
          // d(sample)/d(w_im) and d(sample)/d(h_im); w_im = x * W - 0.5, h_im = y * H - 0.5.
          const coord_t dw = -hh * s[0] + hh * s[1] - f.lh * s[2] + f.lh * s[3];
          const coord_t dh = -hw * s[0] - f.lw * s[1] + hw * s[2] + f.lw * s[3];
          glp[2 * p] = a * dw * static_cast<coord_t>(W);
          glp[2 * p + 1] = a * dh * static_cast<coord_t>(H);
        }
      }
      if constexpr (kDirect) {
        for (int64_t r = 0; r < HW; ++r) {
          if (tch[r]) continue;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) dst[r * rs + d] = scalar_t(0);
        }
      } else {
        for (int64_t r = 0; r < HW; ++r) {
          const coord_t* gr = gv_buf.data() + r * D;
          if (tch[r]) {
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) dst[r * rs + d] = static_cast<scalar_t>(gr[d]);
          } else {
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) dst[r * rs + d] = scalar_t(0);
          }
        }
      }
    }
  });
}

// Calls fn(std::integral_constant<int, kD>) with kD = D for the common float32 head sizes (ViT-Adapter and
// Deformable DETR use 32 and 64 channels per head), else kD = 0 (runtime D). Other dtypes use the runtime-D
// kernel only, to keep the compile short.
template <typename scalar_t, typename Fn>
void with_channels(int64_t D, Fn&& fn) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (D == 64) return fn(std::integral_constant<int, 64>{});
    if (D == 32) return fn(std::integral_constant<int, 32>{});
  }
  fn(std::integral_constant<int, 0>{});
}

// Level sizes must sum to S and the start indices must be their exclusive cumulative sum; reading
// them here is cheap (L <= a handful) and keeps every value access in bounds. H*W and the running sum are
// computed with overflow checks (a product that wraps around to the right S would otherwise pass and send
// the kernel out of bounds). Errors are ValueErrors in Python, like the wrapper's own checks.
void check_levels(const at::Tensor& spatial_shapes, const at::Tensor& level_start_index, int64_t S) {
  TORCH_CHECK(spatial_shapes.device().is_cpu() && level_start_index.device().is_cpu(),
              "ms_deform_attn (cpu): spatial_shapes and level_start_index must be on the CPU");
  const int64_t* sh = spatial_shapes.data_ptr<int64_t>();
  const int64_t* st = level_start_index.data_ptr<int64_t>();
  const int64_t L = spatial_shapes.size(0);
  int64_t total = 0;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = sh[2 * l], W = sh[2 * l + 1];
    TORCH_CHECK_VALUE(H > 0 && W > 0, "ms_deform_attn: level ", l, " of spatial_shapes is (H, W) = (", H, ", ", W,
                      "); every level needs H > 0 and W > 0");
    int64_t hw = 0;
    TORCH_CHECK_VALUE(!__builtin_mul_overflow(H, W, &hw), "ms_deform_attn: level ", l, " of spatial_shapes: H*W = ",
                      H, "*", W, " overflows int64; spatial_shapes must hold each level's real (H, W)");
    TORCH_CHECK_VALUE(!__builtin_add_overflow(total, hw, &total), "ms_deform_attn: the level sizes H*W up to level ",
                      l, " of spatial_shapes overflow int64 when summed; they must sum to S = ", S);
  }
  TORCH_CHECK_VALUE(total == S, "ms_deform_attn: spatial_shapes sum to ", total, " positions but value has S = ", S,
                    "; they must match (sum of H*W over levels)");
  total = 0;
  for (int64_t l = 0; l < L; ++l) {
    TORCH_CHECK_VALUE(st[l] == total, "ms_deform_attn: level_start_index[", l, "] = ", st[l],
                      " but the levels of spatial_shapes before it hold ", total, " positions");
    total += sh[2 * l] * sh[2 * l + 1];  // no overflow: checked above, and every partial sum is <= S
  }
}

}  // namespace

at::Tensor ms_deform_attn_forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights) {
  TORCH_CHECK(value.device().is_cpu(), "ms_deform_attn_forward_cpu: value must be a CPU tensor");
  const MsdaSizes z =
      ms_deform_attn_check(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  check_levels(spatial_shapes, level_start_index, z.S);
  auto out = at::empty({z.N, z.Lq, z.M * z.D}, value.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(),
                                  "ms_deform_attn_forward_cpu", [&] {
                                    using coord_t = coord_type_t<scalar_t>;
                                    auto run = [&](auto kd) {
                                      forward_impl<scalar_t, coord_t, decltype(kd)::value>(
                                          value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(),
                                          level_start_index.data_ptr<int64_t>(),
                                          sampling_locations.data_ptr<coord_t>(),
                                          attention_weights.data_ptr<coord_t>(), out.data_ptr<scalar_t>(), z);
                                    };
                                    with_channels<scalar_t>(z.D, run);
                                  });
  return out;
}

std::vector<at::Tensor> ms_deform_attn_backward_cpu(const at::Tensor& grad_output, const at::Tensor& value,
                                                    const at::Tensor& spatial_shapes,
                                                    const at::Tensor& level_start_index,
                                                    const at::Tensor& sampling_locations,
                                                    const at::Tensor& attention_weights) {
  TORCH_CHECK(value.device().is_cpu() && grad_output.device().is_cpu(),
              "ms_deform_attn_backward_cpu: tensors must be on the CPU");
  const MsdaSizes z =
      ms_deform_attn_check(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  check_levels(spatial_shapes, level_start_index, z.S);
  TORCH_CHECK(grad_output.is_contiguous() && grad_output.scalar_type() == value.scalar_type() &&
                  grad_output.numel() == z.N * z.Lq * z.M * z.D,
              "ms_deform_attn_backward_cpu: grad_output must be a contiguous (N, Lq, M*D) tensor of the value dtype");
  const auto coord = sampling_locations.scalar_type();
  // Every element is written exactly once (each (n, level, head) slice by the task that owns it).
  auto grad_value = at::empty(value.sizes(), value.options());
  auto grad_loc = at::empty_like(sampling_locations);
  auto grad_attn = at::empty_like(attention_weights);
  if (grad_output.numel() > 0) {  // N, Lq, M and D all > 0
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
          using coord_t = coord_type_t<scalar_t>;
          auto run = [&](auto kd) {
            backward_impl<scalar_t, coord_t, decltype(kd)::value>(
                grad_output.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(),
                level_start_index.data_ptr<int64_t>(), sampling_locations.data_ptr<coord_t>(),
                attention_weights.data_ptr<coord_t>(), grad_value.data_ptr<scalar_t>(),
                grad_loc.data_ptr<coord_t>(), grad_attn.data_ptr<coord_t>(), z);
          };
          with_channels<scalar_t>(z.D, run);
        });
  } else {
    // Nothing to sample (no queries, or D = 0 channels): every gradient is an empty sum. With D = 0 and
    // queries the location/weight gradients are not empty and must be zeroed too (as the reference's).
    grad_value.zero_();
    grad_loc.zero_();
    grad_attn.zero_();
  }
  return {grad_value, grad_loc, grad_attn};
}

}  // namespace vit_adapter

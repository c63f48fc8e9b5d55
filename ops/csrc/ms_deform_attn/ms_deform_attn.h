// Multi-scale deformable attention: declarations shared by the CPU and CUDA kernels.
//
// Shapes (all tensors contiguous; the Python wrapper guarantees it):
//   value               (N, S, M, D)   float64 / float32 / float16 / bfloat16
//   spatial_shapes      (L, 2) int64   (H, W) of each level, sum(H*W) == S
//   level_start_index   (L,) int64     offset of each level in S
//   sampling_locations  (N, Lq, M, L, P, 2)  (x, y) in [0, 1]; float64 when value is float64, else float32
//   attention_weights   (N, Lq, M, L, P)     same dtype as sampling_locations
//   output              (N, Lq, M*D)   dtype of value
//
// Sampling: bilinear, pixel centres at (i + 0.5), zeros outside the map (grid_sample,
// align_corners=False, padding_mode='zeros'). Accumulation in float32 (float64 for float64 values).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace vit_adapter {

at::Tensor ms_deform_attn_forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights);

// Returns {grad_value, grad_sampling_locations, grad_attention_weights}.
std::vector<at::Tensor> ms_deform_attn_backward_cpu(const at::Tensor& grad_output, const at::Tensor& value,
                                                    const at::Tensor& spatial_shapes,
                                                    const at::Tensor& level_start_index,
                                                    const at::Tensor& sampling_locations,
                                                    const at::Tensor& attention_weights);

#ifdef WITH_CUDA
at::Tensor ms_deform_attn_forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                       const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                       const at::Tensor& attention_weights);

std::vector<at::Tensor> ms_deform_attn_backward_cuda(const at::Tensor& grad_output, const at::Tensor& value,
                                                     const at::Tensor& spatial_shapes,
                                                     const at::Tensor& level_start_index,
                                                     const at::Tensor& sampling_locations,
                                                     const at::Tensor& attention_weights);
#endif

// Shape checks shared by both devices (cheap: metadata only). Fills the sizes.
struct MsdaSizes {
  int64_t N, S, M, D, Lq, L, P;
};

inline MsdaSizes ms_deform_attn_check(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights) {
  TORCH_CHECK(value.dim() == 4, "ms_deform_attn: value must be (N, S, M, D), got ", value.sizes());
  TORCH_CHECK(sampling_locations.dim() == 6 && sampling_locations.size(5) == 2,
              "ms_deform_attn: sampling_locations must be (N, Lq, M, L, P, 2), got ", sampling_locations.sizes());
  MsdaSizes s{value.size(0), value.size(1), value.size(2), value.size(3),
              sampling_locations.size(1), sampling_locations.size(3), sampling_locations.size(4)};
  TORCH_CHECK(sampling_locations.size(0) == s.N && sampling_locations.size(2) == s.M,
              "ms_deform_attn: sampling_locations ", sampling_locations.sizes(), " does not match value ",
              value.sizes());
  TORCH_CHECK(attention_weights.dim() == 5 && attention_weights.size(0) == s.N && attention_weights.size(1) == s.Lq &&
                  attention_weights.size(2) == s.M && attention_weights.size(3) == s.L && attention_weights.size(4) == s.P,
              "ms_deform_attn: attention_weights must be (N, Lq, M, L, P), got ", attention_weights.sizes());
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(0) == s.L && spatial_shapes.size(1) == 2,
              "ms_deform_attn: spatial_shapes must be (L, 2), got ", spatial_shapes.sizes());
  TORCH_CHECK(level_start_index.dim() == 1 && level_start_index.size(0) == s.L,
              "ms_deform_attn: level_start_index must be (L,), got ", level_start_index.sizes());
  TORCH_CHECK(spatial_shapes.scalar_type() == at::kLong && level_start_index.scalar_type() == at::kLong,
              "ms_deform_attn: spatial_shapes and level_start_index must be int64");
  const auto coord = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(sampling_locations.scalar_type() == coord && attention_weights.scalar_type() == coord,
              "ms_deform_attn: sampling_locations and attention_weights must be ", coord, " for ",
              value.scalar_type(), " values");
  TORCH_CHECK(value.is_contiguous() && spatial_shapes.is_contiguous() && level_start_index.is_contiguous() &&
                  sampling_locations.is_contiguous() && attention_weights.is_contiguous(),
              "ms_deform_attn: inputs must be contiguous");
  return s;
}

}  // namespace vit_adapter

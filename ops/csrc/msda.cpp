// Python binding of the multi-scale deformable attention kernels: one extension per build
// (CPU-only, or CPU + CUDA when compiled with -DWITH_CUDA), dispatching on the device of `value`.
// The torch op itself ("vit_adapter::ms_deform_attn", autograd, fake tensors) is registered in
// ops/functions.py with torch.library.custom_op; these functions are its kernels.
#include <torch/extension.h>

#include "ms_deform_attn/ms_deform_attn.h"

namespace vit_adapter {

at::Tensor forward(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                   const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  if (value.is_cuda()) {
#ifdef WITH_CUDA
    return ms_deform_attn_forward_cuda(value, spatial_shapes, level_start_index, sampling_locations,
                                       attention_weights);
#else
    TORCH_CHECK(false, "ms_deform_attn: this build has no CUDA kernel (built for CPU only)");
#endif
  }
  return ms_deform_attn_forward_cpu(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
}

std::vector<at::Tensor> backward(const at::Tensor& grad_output, const at::Tensor& value,
                                 const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                                 const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  if (value.is_cuda()) {
#ifdef WITH_CUDA
    return ms_deform_attn_backward_cuda(grad_output, value, spatial_shapes, level_start_index, sampling_locations,
                                        attention_weights);
#else
    TORCH_CHECK(false, "ms_deform_attn: this build has no CUDA kernel (built for CPU only)");
#endif
  }
  return ms_deform_attn_backward_cpu(grad_output, value, spatial_shapes, level_start_index, sampling_locations,
                                     attention_weights);
}

bool with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace vit_adapter

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &vit_adapter::forward, "ms_deform_attn forward -> (N, Lq, M*D)");
  m.def("backward", &vit_adapter::backward,
        "ms_deform_attn backward -> [grad_value, grad_sampling_locations, grad_attention_weights]");
  m.def("with_cuda", &vit_adapter::with_cuda, "whether this build contains the CUDA kernel");
}

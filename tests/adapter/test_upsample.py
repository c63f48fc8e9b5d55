"""Upsample2x (matmul form of the 2x2 stride-2 transposed conv) equals nn.ConvTranspose2d, values and grads."""
import pytest
import torch
from torch import nn

from adapter.upsample import Upsample2x


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('channels_last', [True, False])
def test_matches_conv_transpose_forward_and_backward(bias, channels_last):
    torch.manual_seed(0)
    ours = Upsample2x(8, 6, bias=bias).double()
    ref = nn.ConvTranspose2d(8, 6, 2, 2, bias=bias).double()
    ref.load_state_dict(ours.state_dict())  # same keys and shapes
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    assert ya.shape == (2, 6, 10, 14)
    torch.testing.assert_close(ya, yb)
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    if bias:
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad)


def test_is_a_conv_transpose_and_rejects_bad_input():
    up = Upsample2x(4, 4)
    assert isinstance(up, nn.ConvTranspose2d) and up.kernel_size == (2, 2) and up.stride == (2, 2)
    with pytest.raises(ValueError, match=r'expected \(B, 4, H, W\)'):
        up(torch.randn(1, 3, 4, 4))


def test_inference_path_matches_training_path():
    torch.manual_seed(0)
    up = Upsample2x(8, 6)
    x = torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        fast = up(x)
    torch.testing.assert_close(fast, up(x).detach(), rtol=1e-5, atol=1e-5)

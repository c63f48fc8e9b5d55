"""SpatialPriorModule: the inference path (BatchNorm folded into the preceding conv) equals the plain one."""
import pytest
import torch

from adapter.spm import SpatialPriorModule


@pytest.mark.parametrize('norm', ['BN', 'GN'])
def test_folded_inference_equals_module_by_module(norm):
    torch.manual_seed(0)
    spm = SpatialPriorModule(inplanes=8, embed_dim=16, norm=norm)
    x = torch.randn(2, 3, 64, 96)
    spm.train()
    for _ in range(3):  # give BN running statistics that are not the identity
        spm(x * 3 + 1)
    spm.eval()
    with torch.no_grad():
        fast = spm(x)
    slow = spm(x)  # grad enabled: the modules one by one
    assert [tuple(t.shape) for t in fast] == [(2, 16, 16, 24), (2, 16, 8, 12), (2, 16, 4, 6), (2, 16, 2, 3)]
    for a, b in zip(fast, slow):
        assert a.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(a, b.detach(), rtol=1e-4, atol=1e-4)

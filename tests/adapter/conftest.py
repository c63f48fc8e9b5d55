"""Adapter tests use the pure-PyTorch MSDeformAttn reference: no kernel build inside this budget; the ops
tests cover the compiled kernels against that reference."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _msda_reference(monkeypatch):
    monkeypatch.setenv('VIT_ADAPTER_MSDA_BACKEND', 'reference')
    torch.manual_seed(0)
    yield

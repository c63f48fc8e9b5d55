"""One torch thread for the analysis tests: the models are tiny, and on a busy 2-core machine a second
OpenMP thread mostly waits in barriers (seen: 7 s -> 190 s for one test under load). Restored after."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

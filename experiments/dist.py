"""A DistributedDataParallel wrapper that also works for CPU modules (gloo), registered for mmengine.

mmengine's Runner always passes ``device_ids=[LOCAL_RANK]`` to its DDP wrapper, which torch rejects for CPU
modules. ``CPUDistributedDataParallel`` drops ``device_ids``/``output_device`` when the module lives on the CPU and
is otherwise mmengine's ``MMDistributedDataParallel`` (same train_step/val_step).
"""
from __future__ import annotations

from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module(force=True)
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that accepts CPU modules (torch.distributed gloo)."""

    def __init__(self, module, detect_anomalous_params: bool = False, **kwargs) -> None:
        if next(module.parameters()).device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, detect_anomalous_params=detect_anomalous_params, **kwargs)

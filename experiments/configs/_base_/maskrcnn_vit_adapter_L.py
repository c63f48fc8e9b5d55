"""Mask R-CNN + ViT-Adapter-L: the ViT-Adapter-S model at size L (the neck / heads follow its width), with the official
L recipe (normalisation, layer-wise lr decay)."""
_base_ = ['./maskrcnn_vit_adapter.py', './vit_adapter_l.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

# The official mask_rcnn_augreg_{adapter_,}large_fpn_*_coco.py: AugReg's input normalisation (mean = std = 127.5,
# their coco_instance_augreg.py) and, instead of the custom keys, layer-wise lr decay 0.80 over the 24 ViT blocks
# (experiments/optim.py, the official LayerDecayOptimizerConstructor's rule; the blocks are counted in the model).
model = wire(_base_.model, backbone=_base_.vit_adapter_l,
             data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]))
optim_wrapper = dict(constructor='ViTLayerDecayOptimWrapperConstructor',
                     paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.8))

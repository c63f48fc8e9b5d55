"""Mask R-CNN + ViT-Adapter-L: the ViT-Adapter-S model at size L (the neck / heads follow its width), with the official
L recipe (normalisation, layer-wise lr decay)."""
_base_ = ['./maskrcnn_vit_adapter.py', './vit_adapter_l.py']
from experiments.grids import augreg_norm  # noqa: E402  (after _base_, so mmengine reads a classic config)
from experiments.models import wire  # noqa: E402

# The official mask_rcnn_augreg_{adapter_,}large_fpn_*_coco.py: AugReg's input normalisation (``augreg_norm``,
# their coco_instance_augreg.py) and, instead of the custom keys, layer-wise lr decay 0.80 over the 24 ViT blocks
# (experiments/optim.py, the official LayerDecayOptimizerConstructor's rule; the blocks are counted in the model).
model = wire(_base_.model, backbone=_base_.vit_adapter_l, data_preprocessor=augreg_norm())
optim_wrapper = dict(constructor='ViTLayerDecayOptimWrapperConstructor',
                     paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.8))

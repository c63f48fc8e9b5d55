"""Mask2Former 80k on ADE20K (896x896), BEiT-Adapter-L: Table 6's "ViT-Adapter-L | Mask2Former | IN-22K, BEiT |
COCO-Stuff, sup | 896 | 80k | 59.4 | 60.5 | 571M" row (with BEiTv2-L weights, grid cell ``mask2former_beitv2_adapter_L``,
its "Multi-modal, BEiTv2 ... 61.2 | 61.5 | 571M" row).

A delta on ``mask2former_vit_adapter_L_640_160k.py`` after the official
segmentation/configs/ade20k/mask2former_beit_adapter_large_896_80k_ade20k_ss.py:

- backbone ``BEiTAdapter``: BEiT-L/16 (ImageNet-22K, ``beit_large_patch16_224_pt22k_ft22k.pth``) with its class token
  through the ViT blocks, no absolute position embedding (``use_abs_pos_emb=False``), a relative position table per
  block sized for ``img_size=896`` (56x56 grid, 111x111 offsets + 3 class entries; the 224-px tables are resized at
  load as the official loader does), q / v biases, layer scale and injector gammas initialised to ``init_values``
  1e-6; drop path 0.3, deformable heads 16, ratio 0.5, interactions [[0, 5], [6, 11], [12, 17], [18, 23]],
  gradient checkpointing (the 640 config's, the L preset's);
- head: the 640 config's width-1024 Mask2Former with 200 queries;
- crop 896 (train: random resize of (3584, 896) x 0.5-2.0, crop 896, pad 896; test: (3584, 896), size multiple 32,
  slide 896 / stride 512), 80k iterations, batch 16 x 1, evaluation every 8k; optimiser as the 640 file (AdamW lr
  2e-5, wd 0.05, layer decay 0.90 over 24 blocks with the head's embeddings in layer 0, 1,500-iteration linear
  warm-up from 1e-6, poly 1.0 to 0).

Not reproduced here: the official run starts from ``load_from`` = the whole segmentor trained 80k iterations on
COCO-Stuff-164k (mask2former_beit_adapter_large_896_80k_cocostuff164k, 171 classes; its class predictor does not fit
ADE20K's 150 and is re-initialised by the non-strict load). This config starts from BEiT-L alone (``load_from`` None);
an mmseg 0.x checkpoint of the official head does not load into mmseg 1.x's ``Mask2FormerHead`` without a renaming
that this suite does not have (the backbone converts: ``python -m adapter.convert``).
"""
_base_ = ['./mask2former_vit_adapter_L_640_160k.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)
from experiments.recipes import ade20k_pipelines, warmup_poly  # noqa: E402

crop_size = (896, 896)
#: BEiT-L/16 224, self-supervised on ImageNet-22K then fine-tuned on it (the official config's ``pretrained``).
beit_l = 'pretrained/beit_large_patch16_224_pt22k_ft22k.pth'
#: BEiTv2-L/16 224 (pre-trained on ImageNet-1K with a CLIP tokenizer, fine-tuned on ImageNet-21K): the BEiTv2 row.
beitv2_l = 'pretrained/beitv2_large_patch16_224_pt1k_ft21k.pth'
model = wire(
    _base_.model,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        pretrained=beit_l,
        pretrain_size=896,      # BEiT's img_size: the grid of the relative position tables
        rel_pos_bias=True, class_token=True, abs_pos_embed=False, qkv_bias='qv',
        layer_scale_init=1e-6, init_gamma=1e-6),   # the official init_values, for both
    decode_head=dict(num_queries=200),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(512, 512)))

max_iters = 80000
param_scheduler = warmup_poly(max_iters)  # the 640 file's
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
train_pipeline, test_pipeline = ade20k_pipelines((3584, 896), crop_size)
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=train_pipeline))  # 16 GPUs x 1 image
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
auto_scale_lr = dict(base_batch_size=16)
load_from = None  # the official: the COCO-Stuff-164k segmentor (not reproduced; module docstring)

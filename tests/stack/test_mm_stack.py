"""The pinned OpenMMLab stack works on this CPU torch: real mmdet Mask R-CNN and mmseg UperNet, built from
configs through the registries, run one training step and one inference step.

The models are the suite's own (``experiments.models.model_config``: the ``_base_`` configs) with a small ResNet
as backbone (the adapter has its own tests); what is tested is the stack: mmcv's compiled ops (RoIAlign, NMS),
mmengine's optim wrappers and the two frameworks' data samples.
"""
import copy

import numpy as np
import pytest
import torch
from mmengine.config import Config

from experiments.models import model_config


def _resnet(kind='ResNet', **kw):
    return dict(_delete_=True, type=kind, depth=18, base_channels=16, num_stages=4, out_indices=(0, 1, 2, 3),
                norm_cfg=dict(type='BN', requires_grad=True), style='pytorch', **kw)


def _mask_rcnn_cfg(num_classes=3):
    """The suite's Mask R-CNN (``_base_/maskrcnn_vit_adapter.py``) around a small ResNet, sized for 64x64 images."""
    return model_config(
        'maskrcnn', _resnet(norm_eval=False),
        neck=dict(in_channels=[16, 32, 64, 128]),
        rpn_head=dict(anchor_generator=dict(scales=[2])),
        roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)),
        train_cfg=dict(rpn=dict(sampler=dict(num=64)), rpn_proposal=dict(nms_pre=200, max_per_img=100),
                       rcnn=dict(sampler=dict(num=64))),
        test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100), rcnn=dict(score_thr=0.0, max_per_img=20)))


def _det_batch(size=64, n_images=2):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(0)
    inputs, samples = [], []
    for _ in range(n_images):
        img = rng.integers(0, 255, (3, size, size), dtype=np.uint8)
        masks = np.zeros((2, size, size), dtype=np.uint8)
        masks[0, 8:30, 10:40] = 1
        masks[1, 36:60, 20:50] = 1
        inst = InstanceData()
        inst.bboxes = torch.tensor([[10.0, 8.0, 40.0, 30.0], [20.0, 36.0, 50.0, 60.0]])
        inst.labels = torch.tensor([0, 2])
        inst.masks = BitmapMasks(masks, size, size)
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1.0, 1.0), pad_shape=(size, size)))
        sample.gt_instances = inst
        inputs.append(torch.from_numpy(img))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_mmdet_mask_rcnn_train_and_infer_step():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import OptimWrapper
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config(dict(model=_mask_rcnn_cfg())).model)
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-4))
    before = copy.deepcopy(model.backbone.conv1.weight.detach())
    model.train()
    log_vars = model.train_step(_det_batch(), optim)
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask', 'loss'):
        assert key in log_vars and torch.isfinite(torch.as_tensor(log_vars[key])), key
    assert not torch.equal(before, model.backbone.conv1.weight), 'optimiser step did not change the weights'
    model.eval()
    with torch.no_grad():
        results = model.test_step(_det_batch(n_images=1))
    pred = results[0].pred_instances
    assert pred.bboxes.shape[1] == 4 and len(pred.bboxes) == len(pred.labels) == len(pred.scores)
    assert pred.masks.shape[1:] == (64, 64)
    assert len(pred.labels) > 0 and int(pred.labels.max()) < 3


def _upernet_cfg(num_classes=4):
    """The suite's UperNet (``_base_/upernet_vit_adapter.py``) around a small ResNet, on 64x64 images."""
    return model_config(
        'upernet', _resnet('ResNetV1c', stem_channels=16),
        data_preprocessor=dict(size=(64, 64)),
        decode_head=dict(in_channels=[16, 32, 64, 128], channels=32, num_classes=num_classes),
        auxiliary_head=dict(in_channels=64, channels=16, num_classes=num_classes),
        test_cfg=dict(_delete_=True, mode='whole'))


def _seg_batch(size=64, n_images=2):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    rng = np.random.default_rng(0)
    inputs, samples = [], []
    for _ in range(n_images):
        img = rng.integers(0, 255, (3, size, size), dtype=np.uint8)
        label = np.zeros((1, size, size), dtype=np.int64)
        label[:, 10:40, 10:40] = 1
        label[:, 40:, :20] = 3
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label))
        inputs.append(torch.from_numpy(img))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_mmseg_upernet_train_and_infer_step():
    from mmengine.optim import OptimWrapper
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config(dict(model=_upernet_cfg())).model)
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-4))
    model.train()
    log_vars = model.train_step(_seg_batch(), optim)
    assert {'decode.loss_ce', 'aux.loss_ce', 'loss'} <= set(log_vars)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    model.eval()
    with torch.no_grad():
        results = model.test_step(_seg_batch(n_images=1))
    seg = results[0].pred_sem_seg.data
    assert seg.shape == (1, 64, 64)
    assert int(seg.max()) < 4


def test_mmcv_compiled_ops_match_reference():
    """mmcv was installed with its compiled ops (not the lite package): RoIAlign runs and is correct."""
    from mmcv.ops import RoIAlign, nms
    feat = torch.arange(16.0).view(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])
    out = RoIAlign(output_size=2, spatial_scale=1.0, sampling_ratio=1, aligned=True)(feat, rois)
    # with aligned=True the 2x2 bins centre on (1,1),(1,3),(3,1),(3,3) in pixel units -> sample (0.5, 0.5) offsets
    expected = torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]])
    assert torch.allclose(out, expected), out
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]

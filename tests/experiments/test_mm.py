"""mmdet Mask R-CNN and mmseg UperNet training steps with the adapter ('tiny'), built via the registries.

The models are the suite's (``experiments.models.model_config``: the _base_ configs) around a tiny backbone.
"""
import pytest
import torch

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.structures import InstanceData, PixelData  # noqa: E402

from experiments.models import build_model, model_config  # noqa: E402


def _tiny(**kw) -> dict:
    """A tiny ViTAdapter dict replacing the config's backbone."""
    return dict(_delete_=True, type='ViTAdapter', arch='tiny', **kw)


def _step(model, data):
    model.train()
    params = {n: p.detach().clone() for n, p in model.named_parameters() if 'backbone' in n}
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    losses = model.train_step(data, optim)
    assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    changed = [n for n, p in model.named_parameters() if 'backbone' in n and not torch.equal(p, params[n])]
    assert any('vit.blocks' in n for n in changed) and any('spm' in n for n in changed)
    assert any('interactions.0.injector.gamma' in n for n in changed)
    return losses


def test_mmdet_maskrcnn_train_step_and_pretrained_init_cfg(tmp_path):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from adapter.vit import VisionTransformer
    ref = VisionTransformer(64, 12, 2)
    ckpt = tmp_path / 'deit_tiny.pth'
    sd = dict(ref.state_dict(), cls_token=torch.zeros(1, 1, 64), **{'head.weight': torch.zeros(10, 64)})
    sd['pos_embed'] = torch.cat([torch.zeros(1, 1, 64), sd['pos_embed']], 1)
    torch.save({'model': sd}, ckpt)
    cfg = model_config('maskrcnn', _tiny(window_attn=True, window_size=4,
                                         init_cfg=dict(type='Pretrained', checkpoint=str(ckpt))),
                       # fewer RoIs: CPU time
                       train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100), rcnn=dict(sampler=dict(num=64))))
    model = build_model('det', cfg)
    model.init_weights()
    torch.testing.assert_close(model.backbone.vit.blocks[3].mlp.fc1.weight, ref.blocks[3].mlp.fc1.weight)
    data = dict(inputs=[], data_samples=[])
    for h, w in ((96, 128), (128, 96)):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1., 1.)))
        boxes = torch.tensor([[8., 8., 60., 50.], [30., 20., 90., 80.]])
        masks = torch.zeros(2, h, w, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        s.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([1, 5]),
                                      masks=BitmapMasks(masks.numpy(), h, w))
        data['inputs'].append(torch.randint(0, 255, (3, h, w), dtype=torch.uint8))
        data['data_samples'].append(s)
    losses = _step(model, data)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)


def test_mmseg_upernet_train_step():
    from mmseg.structures import SegDataSample
    model = build_model('seg', model_config(
        'upernet', _tiny(), data_preprocessor=dict(size=(64, 64)),
        decode_head=dict(num_classes=5, channels=32), auxiliary_head=dict(num_classes=5)))
    data = dict(inputs=[], data_samples=[])
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 64, 64)))
        data['inputs'].append(torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8))
        data['data_samples'].append(s)
    losses = _step(model, data)
    assert 'decode.loss_ce' in losses and 'aux.loss_ce' in losses


def test_shim_registration_and_baseline():
    import experiments.shims.mmdet_adapter  # noqa: F401
    import experiments.shims.mmseg_adapter  # noqa: F401
    from mmdet.registry import MODELS as DET
    from mmengine.model import BaseModule
    from mmseg.registry import MODELS as SEG
    from adapter import ViTAdapter, ViTBaseline
    for reg in (DET, SEG):
        a, b = reg.get('ViTAdapter'), reg.get('ViTBaseline')
        assert issubclass(a, ViTAdapter) and issubclass(a, BaseModule) and issubclass(b, ViTBaseline)
    assert not issubclass(ViTAdapter, BaseModule)
    model = build_model('det', model_config('maskrcnn', dict(_delete_=True, type='ViTBaseline', arch='tiny')))
    outs = model.backbone(torch.randn(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]
    with pytest.raises(ValueError, match='either pretrained'):
        build_model('det', model_config('maskrcnn', _tiny(pretrained='a.pth',
                                                          init_cfg=dict(type='Pretrained', checkpoint='a.pth'))))

"""experiments.models: the model dicts come from the _base_ configs, the channel wiring from the preset."""
import pytest
import torch

from experiments.models import backbone_channels, build_model, merge, model_config, rewire, wire


def test_merge_follows_mmengine():
    base = dict(a=dict(b=1, c=2), d=[1])
    assert merge(base, dict(a=dict(c=3), d=[2])) == dict(a=dict(b=1, c=3), d=[2])
    assert merge(base, dict(a=dict(_delete_=True, e=4))) == dict(a=dict(e=4), d=[1])
    assert base == dict(a=dict(b=1, c=2), d=[1])
    # where mmengine's public ConfigDict.merge agrees (lists and non-dicts are replaced) and where it does not: the
    # _delete_ marks of a delta's dicts that meet no base dict (the reason merge is ours; see its docstring)
    from mmengine.config import ConfigDict
    for delta in (dict(d=[dict(x=1)], a=dict(_delete_=True, b=dict(c=1))), dict(a=3, d=dict(e=1)),
                  dict(f=dict(g=dict(_delete_=True, h=1)))):
        theirs = ConfigDict(base)
        theirs.merge(delta)
        same = 'f' not in delta
        assert (merge(base, delta) == theirs.to_dict()) == same, delta
    assert merge(None, dict(f=dict(g=dict(_delete_=True, h=1)))) == dict(f=dict(g=dict(h=1)))


def test_channels_come_from_the_preset_or_the_override():
    assert [backbone_channels(dict(arch=a)) for a in ('T', 'S', 'B', 'L', 'tiny')] == [192, 384, 768, 1024, 64]
    assert backbone_channels({}) == 384 and backbone_channels(dict(arch='tiny', embed_dim=96)) == 96
    assert backbone_channels(dict(arch=dict(base='B', embed_dim=512))) == 512


def test_wire_feeds_the_neck_or_else_the_heads():
    det = dict(backbone=dict(arch='S'), neck=dict(type='FPN', in_channels=[1] * 4), rpn_head=dict(in_channels=256))
    assert wire(det, backbone=dict(arch='L')) == dict(backbone=dict(arch='L'), neck=dict(in_channels=[1024] * 4))
    seg = dict(backbone=dict(arch='S'), decode_head=dict(in_index=[0, 1, 2, 3]), auxiliary_head=dict(in_index=2))
    assert rewire(dict(seg, backbone=dict(arch='T', embed_dim=32))) == dict(
        backbone=dict(arch='T', embed_dim=32), decode_head=dict(in_index=[0, 1, 2, 3], in_channels=[32] * 4),
        auxiliary_head=dict(in_index=2, in_channels=32))
    with pytest.raises(ValueError, match='no backbone'):
        wire(None, neck=dict(type='FPN'))


@pytest.mark.parametrize('name, consumers', [('maskrcnn', ('neck',)), ('semfpn', ('neck',)),
                                             ('upernet', ('decode_head', 'auxiliary_head'))])
def test_model_config_is_the_base_config_around_the_backbone(name, consumers):
    from mmengine.config import Config
    from experiments.models import BASES, CONFIG_DIR
    base = Config.fromfile(str(CONFIG_DIR / BASES[name][1]), import_custom_modules=False).to_dict()['model']
    cfg = model_config(name, dict(arch='B'))
    assert cfg[consumers[0]]['in_channels'] == [768] * 4 and cfg['backbone']['arch'] == 'B'
    if len(consumers) > 1:
        assert cfg[consumers[1]]['in_channels'] == 768
    for key in consumers:
        assert {k: v for k, v in cfg[key].items() if k != 'in_channels'} == {
            k: v for k, v in base[key].items() if k != 'in_channels'}
    assert {k: v for k, v in cfg.items() if k not in ('backbone', *consumers)} == {
        k: v for k, v in base.items() if k not in ('backbone', *consumers)}
    assert model_config(name, dict(_delete_=True, type='ViTBaseline', arch='T'))['backbone'] == dict(
        type='ViTBaseline', arch='T')


def test_meta_build_equals_cpu_build():
    cfg = model_config('maskrcnn', dict(_delete_=True, type='ViTAdapter', arch='tiny'))
    a = build_model('det', cfg, device='meta')
    b = build_model('det', cfg, device='cpu')
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
    assert next(b.parameters()).device == torch.device('cpu')
    assert a.neck.lateral_convs[0].conv.in_channels == 64

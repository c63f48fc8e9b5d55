"""Official-layout checkpoints (detection and segmentation, T/S/B/L, adapters and ViT baselines) convert to this
suite, load strictly, convert back losslessly, and the parameter counts equal the official ones."""
import pytest
import torch

from adapter.convert import build_for_check, convert_official, convert_to_official, main

from .official_layout import layouts, official_param_count, official_state_dict

ALL = sorted(layouts())
SMALL = [n for n in ALL if n.endswith(('_T', '_S'))]


def _backbone(sd):
    return {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}


@pytest.mark.parametrize('name', ALL)
def test_official_layout_loads_strictly_and_counts_match(name):
    sd = official_state_dict(name, device='meta')
    out, dropped, unmatched = convert_official(sd)
    # the official ViT-Adapter backbones have no class token parameter; BEiT's relative position index buffers go
    assert unmatched == [] and dropped == [k for k in sd if k.endswith('relative_position_index')]
    with torch.device('meta'):
        model = build_for_check(_backbone(out))
    model.load_state_dict(_backbone(out), strict=True, assign=True)
    ours = sum(p.numel() for p in model.parameters())
    # the one documented difference: the official pos_embed keeps an unused class-token slot (C parameters); BEiT
    # has no pos_embed, and its table is ours split in two (grid offsets + class entries): equal counts
    assert ours == official_param_count(name) - (model.embed_dim if 'pos_embed' in layouts()[name]['keys'] else 0)


def test_beit_adapter_round_trip_to_official_is_lossless():
    """A tiny BEiT-Adapter (class token, q / v biases, per-block tables with class entries, no pos_embed) -> the
    official BEiTAdapter names (relative_position_bias_table + index buffer, gamma_1, cls_token) -> back, exactly;
    ``check_kwargs`` rebuilds it from the converted keys."""
    from adapter import ViTAdapter
    torch.manual_seed(0)
    m = ViTAdapter('tiny', rel_pos_bias=True, class_token=True, abs_pos_embed=False, qkv_bias='qv', pretrain_size=64)
    ours = {'backbone.' + k: v for k, v in m.state_dict().items()}
    official = convert_to_official(ours)
    assert 'backbone.cls_token' in official and 'backbone.blocks.0.gamma_1' in official
    assert official['backbone.blocks.3.attn.relative_position_bias_table'].shape == (7 * 7 + 3, 2)
    assert official['backbone.blocks.3.attn.relative_position_index'].shape == (17, 17)
    assert not any(k.endswith(('qkv.bias', 'pos_embed', 'rel_pos_cls')) for k in official)
    back, dropped, unmatched = convert_official(official)
    assert unmatched == [] and len(dropped) == 12 and set(back) == set(ours)
    for k, v in ours.items():
        torch.testing.assert_close(back[k], v, rtol=0, atol=0)
    rebuilt = build_for_check(_backbone(back), arch="tiny")
    rebuilt.load_state_dict(_backbone(back), strict=True)
    assert rebuilt.vit.pretrain_grid == (4, 4) and rebuilt.vit.cls_token is not None


def test_vit_adapter_s_detection_count_is_the_official_one():
    assert official_param_count('det_adapter_S') == 27_503_888
    assert official_param_count('seg_adapter_B') == 99_495_392  # DeiT-B 224 (ImageNet-1K row)
    assert official_param_count('seg_adapter_B_in22k') == 99_787_232  # AugReg-B 384 (ImageNet-22K row)


@pytest.mark.parametrize('name', SMALL)
def test_round_trip_to_official_is_lossless(name):
    sd = official_state_dict(name, seed=1)
    out, _, _ = convert_official(sd)
    back = convert_to_official(out)
    assert set(back) == set(sd) | {'backbone.cls_token'}
    for k, v in sd.items():
        if k == 'backbone.pos_embed':  # the class-token slot is never read by the official forward
            torch.testing.assert_close(back[k][:, 1:], v[:, 1:], rtol=0, atol=0)
        else:
            torch.testing.assert_close(back[k], v, rtol=0, atol=0)


def test_cli_converts_and_checks_an_official_detection_checkpoint(tmp_path, capsys):
    sd = official_state_dict('det_adapter_T', seed=2)
    sd['backbone.cls_token'] = torch.zeros(1, 1, 192)
    sd['neck.lateral_convs.0.conv.weight'] = torch.randn(256, 192, 1, 1)
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save({'meta': {'mmdet_version': '2.22.0', 'CLASSES': ('person', 'car')}, 'state_dict': sd}, src)
    assert main([str(src), str(dst), '--check']) == 0
    out = capsys.readouterr().out
    assert "loads strictly into ViTAdapter(arch='T', n_interactions=4" in out
    assert 'dropped backbone.cls_token: the class token' in out and 'class-token slot' in out
    ckpt = torch.load(dst, weights_only=True)
    assert 'neck.lateral_convs.0.conv.weight' in ckpt['state_dict']
    assert 'backbone.vit.blocks.11.ls2.gamma' in ckpt['state_dict']


def test_cli_refuses_files_it_cannot_place_and_writes_nothing(tmp_path, capsys):
    src, dst = tmp_path / 'x.pth', tmp_path / 'out.pth'
    torch.save({'state_dict': {'encoder.layer.0.weight': torch.zeros(2)}}, src)
    assert main([str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert 'encoder.layer.0.weight' in err and 'nothing written' in err and not dst.exists()
    torch.save({'state_dict': {}}, src)
    assert main([str(src), str(dst)]) == 1
    assert 'no ViT-Adapter backbone weights' in capsys.readouterr().err and not dst.exists()
    sd = official_state_dict('det_adapter_T')
    sd['backbone.blocks.0.attn.qkv.weight'] = torch.zeros(3, 3)  # a shape no preset has
    torch.save({'state_dict': sd}, src)
    assert main([str(src), str(dst), '--check']) == 1
    assert '--check failed' in capsys.readouterr().err and not dst.exists()

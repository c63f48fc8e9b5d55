"""Official ViT-Adapter checkpoint (synthesised with the official key layout) -> suite format."""
import torch

from adapter import ViTAdapter, ViTBaseline
from adapter.convert import convert_official, main


def _official_layout(model: ViTAdapter) -> dict:
    """Write ``model``'s weights under the official code's names (written independently of RULES)."""
    out = {}
    last = len(getattr(model, 'interactions', [])) - 1
    for k, v in model.state_dict().items():
        if k.startswith('vit.blocks.'):
            k = k.replace('vit.blocks.', 'blocks.')
        elif k.startswith('vit.patch_embed.'):
            k = k.replace('vit.', '')
        elif k == 'vit.pos_embed':
            k, v = 'pos_embed', torch.cat([torch.randn(1, 1, v.shape[2]), v], 1)
        elif k.startswith('extra_extractors.'):
            k = f'interactions.{last}.' + k
        elif k.startswith('norms.'):
            i, rest = k.split('.', 2)[1:]
            k = f'norm{int(i) + 1}.{rest}'
        elif k.startswith('pyramid.up4.'):
            k = k.replace('pyramid.up4.', 'up1.')
        elif k.startswith('pyramid.up8.'):
            k = k.replace('pyramid.up8.', 'up2.')
        elif k.startswith('pyramid.norms.'):
            i, rest = k.split('.', 3)[2:]
            k = f'norm{int(i) + 1}.{rest}'
        out['backbone.' + k] = v.clone()
    out['backbone.cls_token'] = torch.zeros(1, 1, model.embed_dim)
    out['neck.lateral_convs.0.conv.weight'] = torch.randn(256, model.embed_dim, 1, 1)
    out['roi_head.bbox_head.fc_cls.weight'] = torch.randn(81, 1024)
    return out


def test_official_names_are_the_documented_ones():
    sd = _official_layout(ViTAdapter('tiny'))
    for key in ('backbone.spm.stem.0.weight', 'backbone.spm.conv2.0.weight', 'backbone.spm.fc4.bias',
                'backbone.level_embed', 'backbone.interactions.0.injector.gamma',
                'backbone.interactions.0.injector.query_norm.weight',
                'backbone.interactions.0.injector.attn.sampling_offsets.weight',
                'backbone.interactions.1.extractor.ffn.dwconv.dwconv.weight',
                'backbone.interactions.1.extractor.ffn_norm.weight',
                'backbone.interactions.3.extra_extractors.1.ffn.fc2.bias',
                'backbone.up.weight', 'backbone.norm4.running_mean', 'backbone.blocks.11.attn.qkv.weight',
                'backbone.patch_embed.proj.weight', 'backbone.pos_embed'):
        assert key in sd, key


def test_convert_cli_roundtrip(tmp_path, capsys):
    src_model = ViTAdapter('tiny', init_gamma=0.3).eval()
    with torch.no_grad():
        for p in src_model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    src = tmp_path / 'official.pth'
    torch.save({'state_dict': _official_layout(src_model), 'meta': {'mmdet_version': '2.22.0', 'epoch': 12}}, src)
    dst = tmp_path / 'suite.pth'
    assert main([str(src), str(dst), '--check', 'tiny']) == 0
    assert 'loads strictly' in capsys.readouterr().out
    ckpt = torch.load(dst, weights_only=True)
    sd = ckpt['state_dict']
    assert 'neck.lateral_convs.0.conv.weight' in sd and 'roi_head.bbox_head.fc_cls.weight' in sd
    assert list(ckpt['meta']['dropped']) == ['backbone.cls_token']
    fresh = ViTAdapter('tiny').eval()
    fresh.load_state_dict({k[9:]: v for k, v in sd.items() if k.startswith('backbone.')}, strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(src_model(x), fresh(x)):
            torch.testing.assert_close(a, b)
    assert main([str(src), str(dst)]) == 2          # refuses to overwrite


def test_convert_baseline_and_unmatched_keys_are_reported():
    model = ViTBaseline('tiny')
    sd = _official_layout(model)
    sd['backbone.some_new_thing'] = torch.zeros(1)
    out, dropped, unmatched = convert_official(sd)
    assert unmatched == ['backbone.some_new_thing'] and dropped == ['backbone.cls_token']
    model.load_state_dict({k[9:]: v for k, v in out.items() if k.startswith('backbone.')}, strict=True)

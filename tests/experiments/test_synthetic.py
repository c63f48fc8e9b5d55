import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from experiments.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(seed=3, size=64, train=6, val=3)


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob('*')):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic_and_idempotent(tmp_path):
    a = generate(tmp_path / 'a', SPEC)
    b = generate(tmp_path / 'b', SPEC)
    assert _digest(a) == _digest(b)
    before = (a / 'DONE.json').stat().st_mtime_ns
    generate(a, SPEC)  # idempotent: nothing rewritten
    assert (a / 'DONE.json').stat().st_mtime_ns == before
    other = generate(tmp_path / 'c', SyntheticSpec(seed=4, size=64, train=6, val=3))
    assert _digest(other) != _digest(a)


def test_mismatch_is_an_error(tmp_path):
    generate(tmp_path / 'a', SPEC)
    with pytest.raises(FileExistsError, match='delete it or pass another --out'):
        generate(tmp_path / 'a', SyntheticSpec(seed=5, size=64, train=6, val=3))


def test_coco_files_load_with_pycocotools_and_mmdet(tmp_path):
    from pycocotools.coco import COCO
    root = generate(tmp_path / 's', SPEC)
    coco = COCO(str(root / 'coco/annotations/instances_train2017.json'))
    assert len(coco.getImgIds()) == 6 and [c['name'] for c in coco.loadCats(coco.getCatIds())] == [
        'disc', 'square', 'triangle']
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns
    for ann in anns:
        mask = coco.annToMask(ann)
        assert mask.sum() > 0
        x, y, w, h = ann['bbox']
        ys, xs = np.nonzero(mask)
        assert xs.min() >= int(x) - 1 and xs.max() <= x + w + 1 and ys.min() >= int(y) - 1 and ys.max() <= y + h + 1

    from mmdet.datasets import CocoDataset
    ds = CocoDataset(data_root=str(root / 'coco'), ann_file='annotations/instances_train2017.json',
                     data_prefix=dict(img='train2017/'), metainfo=dict(classes=('disc', 'square', 'triangle')),
                     pipeline=[], filter_cfg=None)
    item = ds[0]
    assert item['instances'] and {i['bbox_label'] for a in [item] for i in a['instances']} <= {0, 1, 2}


def test_ade_layout_and_reduce_zero_label(tmp_path):
    root = generate(tmp_path / 's', SPEC) / 'ade' / 'ADEChallengeData2016'
    for split in ('training', 'validation'):
        imgs = sorted((root / 'images' / split).glob('*.jpg'))
        anns = sorted((root / 'annotations' / split).glob('*.png'))
        assert [p.stem for p in imgs] == [p.stem for p in anns] and imgs
    label = np.array(Image.open(sorted((root / 'annotations/training').glob('*.png'))[0]))
    assert label.dtype == np.uint8 and set(np.unique(label)) <= {0, 1, 2, 3, 4} and 1 in label
    from mmseg.datasets import BaseSegDataset
    from mmseg.datasets.transforms import LoadAnnotations
    ds = BaseSegDataset(data_root=str(root), data_prefix=dict(img_path='images/training',
                                                              seg_map_path='annotations/training'),
                        img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True, pipeline=[],
                        metainfo=dict(classes=('background', 'disc', 'square', 'triangle')))
    out = LoadAnnotations(reduce_zero_label=True)(dict(ds[0]))
    seg = out['gt_seg_map']
    assert set(np.unique(seg)) <= {0, 1, 2, 3, 255} and 255 in seg  # 0 -> ignore (255), 1..4 -> 0..3

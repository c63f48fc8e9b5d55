"""A small synthetic dataset that a model learns in minutes, in the real COCO and ADE20K layouts.

Images show coloured, textured shapes (classes ``disc``, ``square``, ``triangle``) on a textured background.
Each class has its own colour family *and* its own texture, so both colour and local pattern carry the label;
backgrounds are low-contrast noise and stripes so the model has to separate figure from ground.

Two datasets come out of one generator, deterministic from ``seed``:

* ``<out>/coco``: ``train2017/``, ``val2017/`` (JPEG) and ``annotations/instances_{train,val}2017.json`` with
  polygon masks, boxes (``xywh``), areas and categories; loads with pycocotools and mmdet's ``CocoDataset``.
* ``<out>/ade/ADEChallengeData2016``: ``images/{training,validation}/*.jpg`` and
  ``annotations/{training,validation}/*.png``. Label PNG values follow ADE20K: 0 is "other / unlabelled" (a
  thin band around every object, ignored under ``reduce_zero_label=True``), 1 is background, 2.. are the shape
  classes. With ``reduce_zero_label`` the model sees classes 0..3 = background, disc, square, triangle.

Usage:
    python -m experiments.synthetic --out data/synthetic [--seed 0] [--size 128] [--train 400] [--val 50]

Generation is idempotent: a finished dataset (``<out>/DONE.json`` matching the arguments) is left alone; a
folder holding a different dataset is an error (pick another ``--out`` or delete it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('disc', 'square', 'triangle')
#: Seg classes after ``reduce_zero_label`` (label 1 in the PNG becomes 0, ...).
SEG_CLASSES = ('background',) + CLASSES
SEG_PALETTE = [[40, 40, 40], [220, 60, 60], [60, 200, 60], [70, 90, 230]]
#: Base colour per class (RGB); every object jitters it.
_COLOURS = np.array([[215, 60, 55], [60, 190, 70], [70, 90, 225]], dtype=np.float32)
_FORMAT_VERSION = 3  # bump when the images change; older datasets are regenerated


@dataclass(frozen=True)
class SyntheticSpec:
    """What a synthetic dataset folder holds; stored in ``DONE.json`` for the idempotency check."""

    seed: int = 0
    size: int = 128
    train: int = 400
    val: int = 50
    max_objects: int = 2
    min_radius: float = 0.18  # object radius as a fraction of the image side
    max_radius: float = 0.32
    version: int = _FORMAT_VERSION


def _texture(rng: np.random.Generator, size: int, kind: int) -> np.ndarray:
    """A (size, size) texture in [-1, 1]: 0 stripes, 1 checker, 2 dots, 3 smooth noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == 0:
        period = rng.uniform(5, 8)
        ang = rng.uniform(0, np.pi)
        t = np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period)
    elif kind == 1:
        cell = int(rng.integers(4, 7))
        t = (((xx // cell) + (yy // cell)) % 2) * 2.0 - 1.0
    elif kind == 2:
        period = int(rng.integers(5, 8))
        t = ((xx % period < 2) & (yy % period < 2)).astype(np.float32) * 2.0 - 1.0
    else:
        coarse = rng.standard_normal((size // 16 + 2, size // 16 + 2)).astype(np.float32)
        t = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR))
        t = t / (np.abs(t).max() + 1e-6)
    return t.astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size, 3) float background: low-saturation grey base, smooth noise and faint stripes."""
    base = rng.uniform(90, 160) + rng.uniform(-8, 8, size=3).astype(np.float32)
    tex = 25 * _texture(rng, size, 3)[..., None] + 8 * _texture(rng, size, 0)[..., None]
    noise = rng.normal(0, 6, size=(size, size, 3)).astype(np.float32)
    return base[None, None] + tex + noise


def _shape_polygon(rng: np.random.Generator, cls: int, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Vertices (x, y) of one object; class 0 disc (24-gon), 1 square (rotated), 2 triangle."""
    rot = rng.uniform(0, 2 * np.pi)
    n = {0: 24, 1: 4, 2: 3}[cls]
    scale = {0: 1.0, 1: 1.15, 2: 1.25}[cls]
    angles = rot + np.arange(n) * 2 * np.pi / n
    return [(float(cx + scale * r * np.cos(a)), float(cy + scale * r * np.sin(a))) for a in angles]


def _render(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, list[dict], np.ndarray]:
    """One sample.

    Returns:
        image (H, W, 3) uint8, objects [{cls, polygon}] in paint order, and the ADE-style label map (H, W)
        uint8 (0 = ignore band, 1 = background, 2 + cls = shape).
    """
    size = spec.size
    img = _background(rng, size)
    label = np.ones((size, size), dtype=np.uint8)
    objects = []
    n_obj = int(rng.integers(1, spec.max_objects + 1))
    for _ in range(n_obj):
        cls = int(rng.integers(0, len(CLASSES)))
        r = rng.uniform(spec.min_radius, spec.max_radius) * size
        cx, cy = rng.uniform(r, size - r, size=2)
        poly = _shape_polygon(rng, cls, cx, cy, r)
        mask_img = Image.new('L', (size, size), 0)
        ImageDraw.Draw(mask_img).polygon(poly, fill=1)
        mask = np.asarray(mask_img).astype(bool)
        if mask.sum() < 16:
            continue
        band_img = Image.new('L', (size, size), 0)
        ImageDraw.Draw(band_img).polygon(poly, outline=1, width=2)
        band = np.asarray(band_img).astype(bool)
        colour = _COLOURS[cls] + rng.normal(0, 12, size=3)
        tex = _texture(rng, size, cls)  # class-specific texture kind
        fill = colour[None, None] * (1.0 + 0.22 * tex[..., None])
        img[mask] = fill[mask]
        label[mask] = 2 + cls
        label[band] = 0
        objects.append(dict(cls=cls, polygon=poly, mask=mask))
    # Later objects occlude earlier ones; keep only visible parts for the instance annotations.
    visible = np.zeros((size, size), dtype=bool)
    kept = []
    for obj in reversed(objects):
        vis = obj['mask'] & ~visible
        visible |= obj['mask']
        if vis.sum() >= 0.6 * obj['mask'].sum():  # mostly visible: the full polygon is a fair annotation
            kept.append(obj)
    kept.reverse()
    return np.clip(img, 0, 255).astype(np.uint8), kept, label


def _coco_annotation(obj: dict, ann_id: int, image_id: int, size: int) -> dict:
    poly = np.clip(np.array(obj['polygon']), 0, size - 1)
    x0, y0 = poly.min(0)
    x1, y1 = poly.max(0)
    return dict(
        id=ann_id, image_id=image_id, category_id=obj['cls'] + 1,
        segmentation=[[round(float(v), 2) for v in poly.reshape(-1)]],
        area=float(obj['mask'].sum()), bbox=[round(float(x0), 2), round(float(y0), 2),
                                             round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
        iscrowd=0)


def _write_split(rng: np.random.Generator, spec: SyntheticSpec, out: Path, split: str, count: int) -> None:
    coco_dir = out / 'coco'
    ade_dir = out / 'ade' / 'ADEChallengeData2016'
    coco_img_dir = coco_dir / f'{split}2017'
    ade_split = 'training' if split == 'train' else 'validation'
    ade_img_dir = ade_dir / 'images' / ade_split
    ade_ann_dir = ade_dir / 'annotations' / ade_split
    for d in (coco_img_dir, ade_img_dir, ade_ann_dir, coco_dir / 'annotations'):
        d.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        img, objs, label = _render(rng, spec)
        image_id = i + 1
        name = f'{split}_{i:06d}'
        Image.fromarray(img).save(coco_img_dir / f'{name}.jpg', quality=95)
        Image.fromarray(img).save(ade_img_dir / f'{name}.jpg', quality=95)
        Image.fromarray(label).save(ade_ann_dir / f'{name}.png')
        images.append(dict(id=image_id, file_name=f'{name}.jpg', height=spec.size, width=spec.size))
        for obj in objs:
            annotations.append(_coco_annotation(obj, len(annotations) + 1, image_id, spec.size))
    categories = [dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(CLASSES)]
    with open(coco_dir / 'annotations' / f'instances_{split}2017.json', 'w') as f:
        json.dump(dict(info=dict(description='ViT-Adapter suite synthetic shapes', version=str(spec.version)),
                       licenses=[], images=images, annotations=annotations, categories=categories), f)


def generate(out: str | os.PathLike, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Write the synthetic COCO and ADE20K datasets under ``out`` (idempotent).

    Args:
        out: Target folder; ``out/coco`` and ``out/ade/ADEChallengeData2016`` are created.
        spec: Seed, image size and split sizes.

    Returns:
        The folder, as a Path.

    Raises:
        FileExistsError: ``out`` holds a dataset generated with different settings.
    """
    out = Path(out)
    done = out / 'DONE.json'
    if done.exists():
        old = json.loads(done.read_text())
        defaults = asdict(SyntheticSpec())  # fields added later default to the behaviour before them
        old = {**{k: v for k, v in defaults.items() if k not in old}, **old}
        if old == asdict(spec):
            return out
        if old.get('version') != spec.version:  # made by an older generator: obsolete, regenerate
            done.unlink()
        else:
            raise FileExistsError(
                f'{out} holds a synthetic dataset made with {old}, not {asdict(spec)}; '
                f'delete it or pass another --out')
    if out.exists() and any(out.iterdir()):
        # A previous generation was interrupted: only our own sub-folders may be there.
        unknown = {p.name for p in out.iterdir()} - {'coco', 'ade', '.tmp'}
        if unknown:
            raise FileExistsError(f'{out} is not empty and holds {sorted(unknown)}; pick another --out')
        shutil.rmtree(out / 'coco', ignore_errors=True)
        shutil.rmtree(out / 'ade', ignore_errors=True)
    rng = np.random.default_rng(spec.seed)
    train_rng, val_rng = (np.random.default_rng(s) for s in rng.integers(0, 2**31, size=2))
    _write_split(train_rng, spec, out, 'train', spec.train)
    _write_split(val_rng, spec, out, 'val', spec.val)
    done.write_text(json.dumps(asdict(spec)))
    return out


def ensure(out: str | os.PathLike, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Generate under a file lock so concurrent jobs (SLURM array tasks) do not race."""
    import fcntl
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f'.{out.name}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return generate(out, spec)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/synthetic', help='target folder (default: data/synthetic)')
    defaults = SyntheticSpec()
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--size', type=int, default=defaults.size, help='image side in pixels')
    parser.add_argument('--train', type=int, default=defaults.train, help='training images')
    parser.add_argument('--val', type=int, default=defaults.val, help='validation images')
    args = parser.parse_args(argv)
    spec = SyntheticSpec(seed=args.seed, size=args.size, train=args.train, val=args.val)
    out = ensure(args.out, spec)
    print(f'synthetic dataset ready: {out}/coco and {out}/ade/ADEChallengeData2016 ({spec})')


if __name__ == '__main__':
    main()

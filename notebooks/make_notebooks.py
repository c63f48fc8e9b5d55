"""Write the exploration notebooks (run: ``.venv/bin/python notebooks/make_notebooks.py``).

The notebooks only call library code (``analysis.*``); they read RUNS_ROOT, GRID, PROFILE, CHECKPOINT
and IMAGES from the environment (see ``analysis/explore.py``). They are stored without outputs.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
SETUP = """%matplotlib inline
import os, sys
from pathlib import Path
repo = Path.cwd() if (Path.cwd() / 'analysis').is_dir() else Path.cwd().parent
sys.path.insert(0, str(repo))
from IPython.display import Markdown, display
from analysis import explore
cfg = explore.settings()
cfg"""

RESULTS = [
    new_markdown_cell('# Grid results\n\nRun states, the paper table with our values beside the paper\'s, '
                      'training curves and the results plot. Settings: environment variables `RUNS_ROOT`, '
                      '`GRID` (default `N`), `PROFILE` (default `tiny`).'),
    new_code_cell(SETUP),
    new_code_cell("res = explore.load_grid(cfg['grid'], cfg['profile'], cfg['runs_root'])\nres.table()"),
    new_code_cell("display(Markdown(explore.tables_markdown(res)))"),
    new_code_cell("from analysis.figures import plot_training_curves\nplot_training_curves(res)"),
    new_code_cell("from analysis.figures import plot_results\nfrom analysis.layouts import LAYOUTS\n"
                  "[plot_results(res, layout) for layout in LAYOUTS[res.grid]]"),
]

FOURIER = [
    new_markdown_cell('# Fourier analysis of feature maps\n\nPark & Kim (ICLR 2022): delta log amplitude of the '
                      'feature maps from frequency 0 to pi. Uses the grid\'s checkpoints (`RUNS_ROOT`, `GRID`, '
                      '`PROFILE`), or `CHECKPOINT`; without any checkpoint it builds tiny models with random '
                      'weights and says so. Images: `IMAGES`, else the run config\'s validation images, else '
                      'built-in demo pictures.'),
    new_code_cell(SETUP),
    new_code_cell("res = explore.load_grid(cfg['grid'], cfg['profile'], cfg['runs_root'])"),
    new_code_cell("fr = explore.fourier_analysis(res, checkpoint=cfg['checkpoint'], images=cfg['images'])\n"
                  "print(fr.images)\nfr.weights"),
    new_code_cell("from analysis.figures import plot_fourier\n"
                  "plot_fourier({k: c['stride8'] for k, c in fr.curves.items()}, 'stride-8 feature maps', cfg['profile'])"),
    new_markdown_cell('Reading the curves: 0 at frequency 0 by construction; a curve that stays higher towards pi '
                      'keeps more high-frequency signal (edges, texture). The paper (F1) finds the ViT-Adapter\'s '
                      'stride-8 map keeps more of it than the plain ViT\'s. Random or barely trained weights say '
                      'nothing about that claim.'),
    new_code_cell("from analysis.figures import plot_fourier_depth\n"
                  "[plot_fourier_depth(c['vit_blocks'], f'{k}: ViT blocks') for k, c in fr.curves.items()]"),
    new_code_cell("from analysis.figures import plot_feature_maps\n"
                  "plot_feature_maps(fr.pictures, {k: f['stride8'] for k, f in fr.feats.items()}, "
                  "'stride-8 feature maps', cfg['profile'])"),
]


def write(name, cells):
    nb = new_notebook(cells=cells, metadata={
        'kernelspec': {'name': 'python3', 'display_name': 'Python 3 (.venv)', 'language': 'python'},
        'language_info': {'name': 'python'}})
    nbformat.validate(nb)
    nbformat.write(nb, HERE / name)
    return HERE / name


NOTEBOOKS = {'results.ipynb': RESULTS, 'fourier.ipynb': FOURIER}

if __name__ == '__main__':
    for n, c in NOTEBOOKS.items():
        print('wrote', write(n, c))

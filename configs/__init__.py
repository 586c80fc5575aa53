"""Experiment configs (ml_collections), one file per method; `common` holds what they share.

Each file's get_config(variant) builds a run, and its VARIANTS list the paper's experiments:
    python main.py --config configs/cifar_ijckd.py:resnet32x4-resnet8x4,connector=1x1-3x3-1x1
"""

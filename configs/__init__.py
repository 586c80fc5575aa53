"""Experiment configs (ml_collections): `cifar` and `imagenet` hold every method as a row of one
table, `cifar_ijckd` and `imagenet_ijckd` the paper's method, `common` what they share.

Each file's get_config(variant) builds a run, and its VARIANTS list the paper's experiments:
    python main.py --config configs/cifar_ijckd.py:resnet32x4-resnet8x4,connector=1x1-3x3-1x1
    python main.py --config configs/cifar.py:kd,resnet32x4-resnet8x4
"""

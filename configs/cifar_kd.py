"""Hinton's KD on CIFAR-100 as RepDistiller runs it: 0.1·CE + 0.9·T²·KL, T = 4.

    python main.py --config configs/cifar_kd.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/kd_resnet32x4-resnet8x4

Variants: Table 1's pairs, with settings ce_weight, kd_weight, temperature.
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('kd', arg)

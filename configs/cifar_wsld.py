"""WSLD, weighted soft label distillation, on CIFAR-100 (ijckd_jax/objectives/wsld.py).

    python main.py --config configs/cifar_wsld.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/wsld_resnet32x4-resnet8x4

Variants: Table 1's pairs, with settings temperature, alpha.
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('wsld', arg)

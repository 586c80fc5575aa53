"""SimKD on CIFAR-100 (the paper's Algorithm 2): feature matching only, the teacher classifier at test.

    python main.py --config configs/cifar_simkd.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/simkd_resnet32x4-resnet8x4

Variants: Table 1's pairs (the paper reproduces SimKD with the 1×1 connector) and Table 2's
connectors (connector=1x1|1x1-1x1|1x1-3x3-1x1).
"""
from configs.common import TABLE1_PAIRS, TABLE2_CONNECTOR_VARIANTS, cifar_distillation_config

VARIANTS = (*TABLE1_PAIRS, *TABLE2_CONNECTOR_VARIANTS)


def get_config(arg=None):
    return cifar_distillation_config('simkd', arg)

"""CRD on CIFAR-100 as RepDistiller runs it: CE + 0.8·(contrastive losses of both directions),
16,384 negatives, τ = 0.07, feature dimension 128 (ijckd_jax/objectives/crd.py); "CRD+KD" is
--config.loss.kd_weight=1. The training split is held on the devices (its memory bank has a
row per example).

    python main.py --config configs/cifar_crd.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/crd_resnet32x4-resnet8x4

Variants: Table 1's pairs, with settings ce_weight, kd_weight, temperature, beta,
feature_dimension, negatives, temperature_nce, momentum.
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('crd', arg)

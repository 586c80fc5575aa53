"""FitNet on CIFAR-100 as RepDistiller runs it: CE + 100·MSE(ConvReg(hint), teacher's hint), hint
on stage 2 (ijckd_jax/objectives/fitnet.py).

    python main.py --config configs/cifar_fitnet.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/fitnet_resnet32x4-resnet8x4

Variants: Table 1's pairs, with settings ce_weight, kd_weight, temperature, beta, hint_layer.
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('fitnet', arg)

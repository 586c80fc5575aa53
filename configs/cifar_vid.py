"""VID on CIFAR-100 as RepDistiller runs it: CE + Σ VID over the stages
(ijckd_jax/objectives/vid.py).

    python main.py --config configs/cifar_vid.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/vid_resnet32x4-resnet8x4

Variants: Table 1's pairs, with settings ce_weight, kd_weight, temperature, beta, init_pred_var, epsilon.
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('vid', arg)

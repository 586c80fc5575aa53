"""PKT on CIFAR-100 as RepDistiller runs it: CE + 30000·PKT on the pooled features
(ijckd_jax/objectives/pkt.py).

    python main.py --config configs/cifar_pkt.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/pkt_resnet32x4-resnet8x4

Variants: Table 1's pairs, with settings ce_weight, kd_weight, temperature, beta.
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('pkt', arg)

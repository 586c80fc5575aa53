"""OFD on CIFAR-100 as mdistiller runs it: CE + 0.001·Σ_i feat_loss(connector_i(s_i), t_i, margin_i)
/ 2^(n−1−i) on the maps before their ReLU, margins from the teacher's BatchNorms
(ijckd_jax/objectives/ofd.py).

    python main.py --config configs/cifar_ofd.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/ofd_resnet32x4-resnet8x4

Variants: Table 1's pairs, with settings ce_weight, feat_weight, kernel_size. mdistiller's
configs/cifar100/ofd.yaml is resnet32x4 → resnet8x4 with cfg.py's OFD defaults; the other
pairs keep them. Teachers must list BatchNorms before their ReLUs: not the ShuffleNets.
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('ofd', arg)

"""DKD on CIFAR-100 as mdistiller runs it: CE + warm-up · (α·TCKD + β·NCKD), T = 4, with
mdistiller's β for each pair of Table 1 (configs/common.py CIFAR_PAIR_SETTINGS).

    python main.py --config configs/cifar_dkd.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/dkd_resnet32x4-resnet8x4

Variants: Table 1's pairs, with the settings of ijckd_jax/objectives/dkd.py (a variant's
beta=... overrides the pair's).
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('dkd', arg)

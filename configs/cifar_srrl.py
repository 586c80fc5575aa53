"""SRRL on CIFAR-100 (the paper's Algorithm 1): CE + α·MSE(teacher classifier on the student's
features, teacher logits) + β·MSE(features); the student's own classifier at test.

    python main.py --config configs/cifar_srrl.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/srrl_resnet32x4-resnet8x4

Variants: Table 1's pairs, with settings alpha, beta, connector.
"""
from configs.common import TABLE1_PAIRS, cifar_distillation_config

VARIANTS = TABLE1_PAIRS


def get_config(arg=None):
    return cifar_distillation_config('srrl', arg)

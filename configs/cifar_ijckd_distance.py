"""Table 7, distance penalty (the paper's Algorithm 5): CE + α·MSE(logits) + β·‖W_t − W_s‖_F,
α = β = 1, the student's own classifier at test.

    python main.py --config configs/cifar_ijckd_distance.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/distance_resnet32x4-resnet8x4

Only resnet32x4→resnet8x4 is a variant: the penalty compares the two classifiers' weights
entry by entry, and Table 7's other pair, WRN-40-2→WRN-40-1, has classifiers of different
widths (128 and 64 inputs), for which Algorithm 5 as printed is undefined.
"""
from configs.common import cifar_distillation_config

VARIANTS = ('resnet32x4-resnet8x4',)


def get_config(arg=None):
    return cifar_distillation_config('ijckd_distance', arg)

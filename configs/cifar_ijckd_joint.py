"""Table 7, joint training (the paper's Algorithm 4): a joint classifier trained online;
α·CE(jc(student), y) + (1−α)·CE(jc(teacher), y) + β·MSE, α = 0.2, β = 1.

    python main.py --config configs/cifar_ijckd_joint.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/joint_resnet32x4-resnet8x4
"""
from configs.common import cifar_distillation_config

VARIANTS = ('resnet32x4-resnet8x4', 'wrn_40_2-wrn_40_1')


def get_config(arg=None):
    return cifar_distillation_config('ijckd_joint', arg)

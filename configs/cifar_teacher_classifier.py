"""Table 6: the student backbone (+ 1×1 connector) trained on hard labels only, under the frozen
teacher classifier; compare with the same student trained by configs/cifar_teacher.py.

    python main.py --config configs/cifar_teacher_classifier.py:wrn_40_2-wrn_40_1 \
        --config.teacher.checkpoint=teachers/wrn_40_2 --workdir runs/table6_wrn_40_2-wrn_40_1
"""
from configs.common import cifar_distillation_config

VARIANTS = ('wrn_40_2-wrn_40_1', 'resnet56-resnet20', 'resnet110-resnet32', 'resnet32x4-resnet8x4')


def get_config(arg=None):
    return cifar_distillation_config('ce_teacher_classifier', arg)

"""Trains a vanilla CIFAR-100 model with cross-entropy: the teachers, and the students' baselines.

    python main.py --config configs/cifar_teacher.py:resnet32x4 --workdir runs/teacher_resnet32x4

The last epoch's model is written to WORKDIR/export, which distillation runs load with
--config.teacher.checkpoint=WORKDIR/export. Variants: any model of the CIFAR zoo.
"""
from ijckd_jax.config import LOW_LEARNING_RATE_STUDENTS, base_config
from ijckd_jax.models import CIFAR_MODELS, check_model_name

VARIANTS = list(CIFAR_MODELS)


def get_config(arg='resnet32x4'):
    check_model_name(arg)
    config = base_config()
    config.student.model = arg
    if arg in LOW_LEARNING_RATE_STUDENTS:
        config.optimizer.learning_rate = 0.01
    return config

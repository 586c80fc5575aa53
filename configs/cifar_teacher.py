"""Trains a vanilla CIFAR-100 model with cross-entropy: the teachers, and the students' baselines.

    python main.py --config configs/cifar_teacher.py:resnet32x4 --workdir runs/teacher_resnet32x4

The last epoch's model is written to WORKDIR/export, which distillation runs load with
--config.teacher.checkpoint=WORKDIR/export. Variants: any model of the CIFAR zoo, optionally
with protocol=repdistiller (learning rate 0.01 for MobileNetV2 too, not only for ShuffleNets) and
data=cifar100|cifar10|digits (the data set with its classes, image size and normalisation:
configs/cifar_teacher.py:resnet20,data=digits trains on the offline digits).
"""
from configs.common import (LOW_LEARNING_RATE_STUDENTS, base_config, cifar_learning_rate, parse_settings, pop_data,
                            pop_protocol)
from ijckd_jax.models import CIFAR_MODELS, check_model_name

VARIANTS = list(CIFAR_MODELS)


def get_config(arg='resnet32x4'):
    model, options = parse_settings(arg)
    check_model_name(model)
    protocol = pop_protocol(options, LOW_LEARNING_RATE_STUDENTS)
    data = pop_data(options)
    if options:
        raise ValueError(f'A teacher variant takes only protocol=... and data=..., got {sorted(options)}.')
    config = base_config(data)
    config.student.model = model
    config.optimizer.learning_rate = cifar_learning_rate(model, protocol)
    return config

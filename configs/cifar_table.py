"""The paper's comparison on CIFAR-100 for one teacher→student pair, trained as one run: every
method on the same batches, the frozen teacher's forward pass computed once per batch for all.

    python main.py --config configs/cifar_table.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/r32x4-r8x4 --config.seeds=0,1,2

trains CE, KD, SRRL, SimKD and IJCKD (--config.methods=kd,ijckd picks others; the ablations
ijckd_distance, ijckd_joint and ce_teacher_classifier may be named too), each with the settings
its own config file gives it, each method × seed in WORKDIR/METHOD/seed_SEED. A variant is
'teacher-student', optionally with protocol=paper|repdistiller; `ijckd-report WORKDIR` reads
the table.
"""
from configs import (cifar_ijckd, cifar_ijckd_distance, cifar_ijckd_joint, cifar_kd, cifar_simkd, cifar_srrl,
                     cifar_teacher, cifar_teacher_classifier)
from configs.common import LOW_LEARNING_RATE_STUDENTS, TABLE1_PAIRS, parse_variant, pop_protocol
from ijckd_jax.table import table_config

# Each method's config file; 'ce' is the student trained alone (configs/cifar_teacher.py).
METHOD_CONFIGS = {'ce': cifar_teacher, 'kd': cifar_kd, 'srrl': cifar_srrl, 'simkd': cifar_simkd,
                  'ijckd': cifar_ijckd, 'ijckd_distance': cifar_ijckd_distance,
                  'ijckd_joint': cifar_ijckd_joint, 'ce_teacher_classifier': cifar_teacher_classifier}
METHODS = 'ce,kd,srrl,simkd,ijckd'  # Table 1's columns
VARIANTS = TABLE1_PAIRS


def get_config(arg='resnet32x4-resnet8x4'):
    teacher, student, options = parse_variant(arg, 'resnet32x4-resnet8x4')
    protocol = pop_protocol(options, LOW_LEARNING_RATE_STUDENTS)
    if options:
        raise ValueError(f'A table variant takes only protocol=..., got {sorted(options)}; set a method\'s '
                         'own settings with --config.method_settings.METHOD.loss.NAME=VALUE.')
    configs = {method: module.get_config(f'{student if method == "ce" else f"{teacher}-{student}"},'
                                         f'protocol={protocol}')
               for method, module in METHOD_CONFIGS.items()}
    return table_config(configs, METHODS)

"""The paper's comparison on CIFAR-100 for one teacher→student pair, trained as one run: every
method on the same batches, the frozen teacher's forward pass computed once per batch for all.

    python main.py --config configs/cifar_table.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/r32x4-r8x4 --config.seeds=0,1,2

trains the student alone (CE) and every method of the paper's Table 1: FitNet, KD, VID, RKD,
PKT, OFD, CRD, WSLD, DKD, SRRL, SimKD and IJCKD (--config.methods=kd,ijckd picks others; AT and
the ablations ijckd_distance, ijckd_joint and ce_teacher_classifier may be named too), each
with the settings its own config file gives it, each method × seed in
WORKDIR/METHOD/seed_SEED. A variant is 'teacher-student', optionally with
protocol=paper|repdistiller and data=cifar100|cifar10|digits; `ijckd-report WORKDIR` reads the
table.
"""
from configs import (cifar_at, cifar_crd, cifar_dkd, cifar_fitnet, cifar_ijckd, cifar_ijckd_distance,
                     cifar_ijckd_joint, cifar_kd, cifar_ofd, cifar_pkt, cifar_rkd, cifar_simkd, cifar_srrl,
                     cifar_teacher, cifar_teacher_classifier, cifar_vid, cifar_wsld)
from configs.common import LOW_LEARNING_RATE_STUDENTS, TABLE1_PAIRS, parse_variant, pop_protocol
from ijckd_jax.training.layout import table_config

# Each method's config file; 'ce' is the student trained alone (configs/cifar_teacher.py).
METHOD_CONFIGS = {'ce': cifar_teacher, 'fitnet': cifar_fitnet, 'kd': cifar_kd, 'vid': cifar_vid, 'rkd': cifar_rkd,
                  'pkt': cifar_pkt, 'ofd': cifar_ofd, 'crd': cifar_crd, 'wsld': cifar_wsld, 'dkd': cifar_dkd,
                  'srrl': cifar_srrl, 'simkd': cifar_simkd, 'ijckd': cifar_ijckd, 'at': cifar_at,
                  'ijckd_distance': cifar_ijckd_distance, 'ijckd_joint': cifar_ijckd_joint,
                  'ce_teacher_classifier': cifar_teacher_classifier}
METHODS = 'ce,fitnet,kd,vid,rkd,pkt,ofd,crd,wsld,dkd,srrl,simkd,ijckd'  # Table 1's columns in its order
VARIANTS = TABLE1_PAIRS


def get_config(arg='resnet32x4-resnet8x4'):
    teacher, student, options = parse_variant(arg, 'resnet32x4-resnet8x4')
    protocol = pop_protocol(options, LOW_LEARNING_RATE_STUDENTS)
    data = options.pop('data', 'cifar100')
    if options:
        raise ValueError(f'A table variant takes only protocol=... and data=..., got {sorted(options)}; set a '
                         "method's own settings with --config.method_settings.METHOD.loss.NAME=VALUE.")
    configs = {method: module.get_config(f'{student if method == "ce" else f"{teacher}-{student}"},'
                                         f'protocol={protocol},data={data}')
               for method, module in METHOD_CONFIGS.items()}
    return table_config(configs, METHODS)

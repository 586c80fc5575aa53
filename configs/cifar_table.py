"""The paper's comparison on CIFAR-100 for one teacher→student pair, trained as one run: every
method on the same batches, the frozen teacher's forward pass computed once per batch for all.

    python main.py --config configs/cifar_table.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/r32x4-r8x4 --config.seeds=0,1,2

trains the student alone (CE) and every method of the paper's Table 1: FitNet, KD, VID, RKD,
PKT, OFD, CRD, WSLD, DKD, SRRL, SimKD and IJCKD (--config.methods=kd,ijckd picks others; AT and
the ablations ijckd_distance, ijckd_joint and ce_teacher_classifier may be named too), each
with the settings configs/cifar.py gives it, each method × seed in
WORKDIR/METHOD/seed_SEED. A row may change its method's settings: --config.methods=
"ijckd,ijckd@loss.alpha_ce=0.2,simkd@connector.kind=1x1-1x1" trains three rows, each in
WORKDIR/ROW/seed_SEED. A variant is 'teacher-student', optionally with protocol=paper|repdistiller,
data=cifar100|cifar10|digits and rows=table1|table2|table3|table4 (ROWS: the paper's Table 1, and
Tables 2-4's ablations as rows of one run); `ijckd-report WORKDIR` reads the table and prints the
paper's number beside each row that has one.
"""
from configs import cifar, cifar_teacher
from configs.common import LOW_LEARNING_RATE_STUDENTS, TABLE1_PAIRS, parse_variant, pop_protocol
from ijckd_jax.training.layout import table_config

# The rows each variant's `rows=` names: a row is METHOD[@FIELD=VALUE[+FIELD=VALUE...]], its
# method's config with those fields changed. table1 is Table 1's columns in its order; table2
# IJCKD and SimKD with each connector; table3 IJCKD's loss terms (α_ce: SR only, 0.1, 0.2, 0.5,
# 1.0; CE only; then ce+sr, ce+fm, ce+sr+fm); table4 the logit-matching loss (MSE, negative
# cosine with α_lm = 10, CE).
ROWS = {
    'table1': 'ce,fitnet,kd,vid,rkd,pkt,ofd,crd,wsld,dkd,srrl,simkd,ijckd',
    'table2': ','.join(f'{method}{setting}' for method in ('ijckd', 'simkd')
                       for setting in ('', '@connector.kind=1x1-1x1', '@connector.kind=1x1-3x3-1x1')),
    'table3': ','.join(['ijckd@loss.alpha_ce=0', 'ijckd@loss.alpha_ce=0.1', 'ijckd@loss.alpha_ce=0.2',
                        'ijckd@loss.alpha_ce=0.5', 'ijckd', 'ijckd@loss.alpha_lm=0',
                        'ijckd@loss.alpha_lm=0+loss.beta_fm=1', 'ijckd@loss.beta_fm=1']),
    'table4': 'ijckd,ijckd@loss.logit_loss=cosine+loss.alpha_lm=10,ijckd@loss.logit_loss=ce',
}
VARIANTS = (*TABLE1_PAIRS, *(f'{pair},rows={rows}' for rows in ('table2', 'table3', 'table4')
                             for pair in TABLE1_PAIRS))


def get_config(arg='resnet32x4-resnet8x4'):
    teacher, student, options = parse_variant(arg, 'resnet32x4-resnet8x4')
    protocol = pop_protocol(options, LOW_LEARNING_RATE_STUDENTS)
    data = options.pop('data', 'cifar100')
    rows = options.pop('rows', 'table1')
    if rows not in ROWS:
        raise ValueError(f"Unknown rows '{rows}'; a table variant's rows= is one of {', '.join(ROWS)}, or pass "
                         'your own with --config.methods=METHOD[@FIELD=VALUE[+FIELD=VALUE...]],...')
    if options:
        raise ValueError(f'A table variant takes only protocol=..., data=... and rows=..., got {sorted(options)}; '
                         "set a method's own settings with --config.method_settings.METHOD.loss.NAME=VALUE, or "
                         'a row with --config.methods=METHOD@FIELD=VALUE.')
    variant = f'{teacher}-{student},protocol={protocol},data={data}'
    # 'ce' is the student trained alone (configs/cifar_teacher.py); every other method is a row
    # of configs/cifar.py.
    configs = {'ce': cifar_teacher.get_config(f'{student},protocol={protocol},data={data}'),
               **{method: cifar.get_config(f'{method},{variant}') for method in cifar.METHODS}}
    return table_config(configs, ROWS[rows])

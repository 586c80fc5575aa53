"""IJCKD on CIFAR-100 (the paper's Algorithm 3): the student under the frozen teacher classifier.

    python main.py --config configs/cifar_ijckd.py:resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/ijckd_resnet32x4-resnet8x4

A variant is 'teacher-student' followed by settings: connector=1x1|1x1-1x1|1x1-3x3-1x1,
alpha_ce, alpha_lm, beta_fm, logit_loss=mse|cosine|ce, and, as in every CIFAR config,
protocol=paper|repdistiller (a MobileNetV2 student starts at learning rate 0.05 in the paper,
0.01 in RepDistiller) and data=cifar100|cifar10|digits (the data set with its classes, image size
and normalisation; digits is the offline one). VARIANTS lists the paper's experiments:
Table 1 (every pair, 1×1 connector, α_ce = α_lm = 1), Table 2 (connectors), Table 3 (the α_ce
sweep, CE only, ce+fm, ce+sr+fm), Table 4 (logit-matching losses; cosine scaled by 10).
"""
from configs.common import TABLE1_PAIRS, TABLE2_CONNECTOR_VARIANTS, cifar_distillation_config

TABLE3_VARIANTS = (
    *(f'resnet32x4-resnet8x4,alpha_ce={alpha}' for alpha in (0.0, 0.1, 0.2, 0.5, 1.0)),
    'resnet32x4-resnet8x4,alpha_lm=0',             # CE only
    'resnet32x4-resnet8x4,alpha_lm=0,beta_fm=1',   # ce + fm
    'resnet32x4-resnet8x4,beta_fm=1',              # ce + sr + fm
)
TABLE4_VARIANTS = tuple(f'{pair},{setting}'
                        for pair in ('resnet32x4-resnet8x4', 'wrn_40_2-wrn_40_1')
                        for setting in ('logit_loss=mse', 'logit_loss=cosine,alpha_lm=10',
                                        'logit_loss=ce'))
VARIANTS = (*TABLE1_PAIRS, *TABLE2_CONNECTOR_VARIANTS, *TABLE3_VARIANTS, *TABLE4_VARIANTS)


def get_config(arg=None):
    return cifar_distillation_config('ijckd', arg)

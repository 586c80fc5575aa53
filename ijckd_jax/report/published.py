"""The published CIFAR-100 top-1 that the report sets beside a run: the paper's, and its
baselines' from the code their numbers come from (RepDistiller's and mdistiller's READMEs).
Data, keyed by exactly the setting each was measured with."""


def paper_key(objective, teacher, student, connector=None, **changes):
    """The key of PAPER_CIFAR100_TOP1 for an objective's run with `changes` to its defaults."""
    return objective, tuple(sorted(changes.items())), connector, teacher, student


R32X4, R8X4, WRN402, WRN401 = 'resnet32x4', 'resnet8x4', 'wrn_40_2', 'wrn_40_1'

# CRD's Tables 1 and 2 (github.com/HobbitLong/RepDistiller, README), the columns in this order.
REPDISTILLER_PAIRS = ('wrn_40_2-wrn_16_2', 'wrn_40_2-wrn_40_1', 'resnet56-resnet20', 'resnet110-resnet20',
                      'resnet110-resnet32', 'resnet32x4-resnet8x4', 'vgg13-vgg8', 'vgg13-MobileNetV2',
                      'ResNet50-MobileNetV2', 'ResNet50-vgg8', 'resnet32x4-ShuffleV1', 'resnet32x4-ShuffleV2',
                      'wrn_40_2-ShuffleV1')

REPDISTILLER_TOP1 = {
    'kd': (74.92, 73.54, 70.66, 70.67, 73.08, 73.33, 72.98, 67.37, 67.35, 73.81, 74.07, 74.45, 74.83),
    'fitnet': (73.58, 72.24, 69.21, 68.99, 71.06, 73.50, 71.02, 64.14, 63.16, 70.69, 73.59, 73.54, 73.73),
    'at': (74.08, 72.77, 70.55, 70.22, 72.31, 73.44, 71.43, 59.40, 58.58, 71.84, 71.73, 72.73, 73.32),
    'vid': (74.11, 73.30, 70.38, 70.16, 72.61, 73.09, 71.23, 65.56, 67.57, 70.30, 73.38, 73.40, 73.61),
    'rkd': (73.35, 72.22, 69.61, 69.25, 71.82, 71.90, 71.48, 64.52, 64.43, 71.50, 72.28, 73.21, 72.21),
    'pkt': (74.54, 73.45, 70.34, 70.25, 72.61, 73.64, 72.88, 67.13, 66.52, 73.01, 74.10, 74.69, 73.89),
    'crd': (75.48, 74.14, 71.16, 71.46, 73.48, 75.51, 73.94, 69.73, 69.11, 74.30, 75.11, 75.65, 76.05),
}

# github.com/megvii-research/mdistiller, README (CIFAR-100, DKD), each with the β its yaml sets
# for the pair where it is not cfg.py's 8.0 (configs/common.py CIFAR_PAIR_SETTINGS, which a test
# checks against these).
MDISTILLER_DKD_TOP1 = {
    'resnet56-resnet20': (71.97, {'beta': 2.0}), 'resnet110-resnet32': (74.11, {'beta': 2.0}),
    'resnet32x4-resnet8x4': (76.32, {}), 'wrn_40_2-wrn_16_2': (76.23, {'beta': 6.0}),
    'wrn_40_2-wrn_40_1': (74.81, {'beta': 6.0}), 'vgg13-vgg8': (74.68, {'beta': 6.0}),
    'resnet32x4-ShuffleV1': (76.45, {}), 'wrn_40_2-ShuffleV1': (76.70, {}),
    'vgg13-MobileNetV2': (69.71, {'beta': 6.0}), 'ResNet50-MobileNetV2': (70.35, {}),
}

# Published CIFAR-100 top-1 (%), each setting listed once: Li et al., "IJCKD", Neural Networks
# 2024, §4.1's text and Tables 2, 3, 4, 6 and 7; and, for the teachers, the
# vanilla students that Table 6 lacks and KD, Tian et al., "Contrastive Representation
# Distillation", ICLR 2020, Table 1 (RepDistiller's README), on the same protocol.
PAPER_CIFAR100_TOP1 = {
    # IJCKD with its defaults (alpha_ce=1, alpha_lm=1, beta_fm=0, MSE, 1x1 connector): §4.1 and
    # Table 2's 1x1 row; the same numbers are Table 3's alpha_ce=1.0, Table 4's MSE and
    # Table 7's teacher-classifier rows.
    paper_key('ijckd', R32X4, R8X4, '1x1'): 76.52,
    paper_key('ijckd', WRN402, WRN401, '1x1'): 75.14,
    # Table 2: connectors, IJCKD and SimKD.
    paper_key('ijckd', R32X4, R8X4, '1x1-1x1'): 77.10,
    paper_key('ijckd', R32X4, R8X4, '1x1-3x3-1x1'): 77.76,
    paper_key('ijckd', WRN402, WRN401, '1x1-1x1'): 75.33,
    paper_key('ijckd', WRN402, WRN401, '1x1-3x3-1x1'): 75.57,
    paper_key('simkd', R32X4, R8X4, '1x1'): 75.91,
    paper_key('simkd', R32X4, R8X4, '1x1-1x1'): 76.21,
    paper_key('simkd', R32X4, R8X4, '1x1-3x3-1x1'): 77.46,
    paper_key('simkd', WRN402, WRN401, '1x1'): 71.76,
    paper_key('simkd', WRN402, WRN401, '1x1-1x1'): 72.23,
    paper_key('simkd', WRN402, WRN401, '1x1-3x3-1x1'): 75.48,
    # Table 3: IJCKD's loss terms, resnet32x4 → resnet8x4.
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_ce=0.0): 75.91,  # SR only
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_ce=0.1): 76.36,
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_ce=0.2): 76.61,
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_ce=0.5): 76.09,
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_lm=0.0): 74.46,  # CE only
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_lm=0.0, beta_fm=1.0): 76.47,  # CE + FM
    paper_key('ijckd', R32X4, R8X4, '1x1', beta_fm=1.0): 76.86,  # CE + SR + FM
    # Table 4: the logit-matching loss (cosine with alpha_lm=10).
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_lm=10.0, logit_loss='cosine'): 76.86,
    paper_key('ijckd', R32X4, R8X4, '1x1', logit_loss='ce'): 75.24,
    paper_key('ijckd', WRN402, WRN401, '1x1', alpha_lm=10.0, logit_loss='cosine'): 75.51,
    paper_key('ijckd', WRN402, WRN401, '1x1', logit_loss='ce'): 74.27,
    # Table 6: the student under the frozen teacher classifier, hard labels only.
    paper_key('ce_teacher_classifier', WRN402, WRN401, '1x1'): 72.32,
    paper_key('ce_teacher_classifier', 'resnet56', 'resnet20', '1x1'): 68.91,
    paper_key('ce_teacher_classifier', 'resnet110', 'resnet32', '1x1'): 70.98,
    paper_key('ce_teacher_classifier', R32X4, R8X4, '1x1'): 74.46,
    # Table 6's other column: the same students with their own classifier, hard labels only.
    **{paper_key('ce', None, model): top1 for model, top1 in (
        (WRN401, 71.98), ('resnet20', 69.06), ('resnet32', 71.14), (R8X4, 72.50))},
    # CRD's Table 1: the teachers, and vanilla students that Table 6 lacks.
    **{paper_key('ce', None, model): top1 for model, top1 in (
        ('resnet56', 72.34), ('resnet110', 74.31), (R32X4, 79.42), (WRN402, 75.61),
        ('vgg13', 74.64), ('wrn_16_2', 73.26), ('vgg8', 70.36))},
    # Table 7: the joint classifier (Algorithm 4) and the classifier distance (Algorithm 5).
    paper_key('ijckd_joint', R32X4, R8X4, '1x1'): 76.65,
    paper_key('ijckd_joint', WRN402, WRN401, '1x1'): 75.02,
    paper_key('ijckd_distance', R32X4, R8X4): 76.55,
    # KD (RepDistiller's defaults: ce_weight 0.1, kd_weight 0.9, temperature 4) and the feature
    # methods with their published weights: CRD's Tables 1 and 2 (RepDistiller's README).
    **{paper_key(method, *pair.split('-')): top1 for method, row in REPDISTILLER_TOP1.items()
       for pair, top1 in zip(REPDISTILLER_PAIRS, row) if top1 is not None},
    # DKD with mdistiller's per-pair β: mdistiller's README.
    **{paper_key('dkd', *pair.split('-'), **settings): top1 for pair, (top1, settings) in MDISTILLER_DKD_TOP1.items()},
}


def paper_top1(setting):
    """The published CIFAR-100 top-1 of exactly this setting, or None."""
    if setting.dataset != 'cifar100':
        return None
    return PAPER_CIFAR100_TOP1.get(
        (setting.objective, setting.changes, setting.connector, setting.teacher, setting.student))

"""Every method on CIFAR-100 as its source runs it, one row of METHODS each:
`configs/cifar.py:METHOD,teacher-student[,SETTING=VALUE...]`.

    python main.py --config configs/cifar.py:kd,resnet32x4-resnet8x4 \
        --config.teacher.checkpoint=teachers/resnet32x4 --workdir runs/kd_resnet32x4-resnet8x4

The settings after the pair are the method's loss settings (docs/objectives.md lists each with
its default and source), connector=1x1|1x1-1x1|1x1-3x3-1x1 where the method has a connector,
and, as in every CIFAR config, protocol=paper|repdistiller and data=cifar100|cifar10|digits
(configs/cifar_ijckd.py says what each does). The method's source settings for a pair where it
gives others (configs/common.py CIFAR_PAIR_SETTINGS, DKD's β) come first; a variant's override
them. VARIANTS are the paper's experiments of each method: Table 1's pairs, Table 2's
connectors for SimKD, Tables 6 and 7's pairs; IJCKD's are configs/cifar_ijckd.py's.
"""
from configs.common import TABLE1_PAIRS, TABLE2_CONNECTOR_VARIANTS, cifar_distillation_config, split_method

# method: (what a run trains, after its source; the variants the paper runs it on), in the order
# of Table 1's columns, then AT and the ablations of Tables 6 and 7.
METHODS = {
    'fitnet': ("FitNet as RepDistiller runs it: CE + 100·MSE(ConvReg(hint), teacher's hint), the hint "
               'on stage 2', TABLE1_PAIRS),
    'kd': ("Hinton's KD as RepDistiller runs it: 0.1·CE + 0.9·T²·KL, T = 4", TABLE1_PAIRS),
    'vid': ('VID as RepDistiller runs it: CE + Σ VID over the stages', TABLE1_PAIRS),
    'rkd': ('RKD as RepDistiller runs it: CE + RKD (distance 25, angle 50) on the pooled features', TABLE1_PAIRS),
    'pkt': ('PKT as RepDistiller runs it: CE + 30000·PKT on the pooled features', TABLE1_PAIRS),
    'ofd': ("OFD as mdistiller runs it: CE + 0.001·Σ_i feat_loss(connector_i(s_i), t_i, margin_i) / "
            "2^(n−1−i) on the maps before their ReLU, margins from the teacher's BatchNorms (teachers "
            'must list BatchNorms before their ReLUs: not the ShuffleNets)', TABLE1_PAIRS),
    'crd': ('CRD as RepDistiller runs it: CE + 0.8·(contrastive losses of both directions), 16,384 '
            'negatives, τ = 0.07, feature dimension 128; "CRD+KD" is --config.loss.kd_weight=1. The '
            'training split is held on the devices (its memory bank has a row per example)', TABLE1_PAIRS),
    'wsld': ('WSLD, weighted soft label distillation', TABLE1_PAIRS),
    'dkd': ("DKD as mdistiller runs it: CE + warm-up · (α·TCKD + β·NCKD), T = 4, with mdistiller's β "
            'for each pair', TABLE1_PAIRS),
    'srrl': ("SRRL (the paper's Algorithm 1): CE + α·MSE(teacher classifier on the student's features, "
             "teacher logits) + β·MSE(features); the student's own classifier at test", TABLE1_PAIRS),
    'simkd': ("SimKD (the paper's Algorithm 2): feature matching only, the teacher classifier at test "
              '(the paper reproduces it with the 1×1 connector)', (*TABLE1_PAIRS, *TABLE2_CONNECTOR_VARIANTS)),
    'ijckd': ("IJCKD (the paper's Algorithm 3): the student under the frozen teacher classifier", ()),
    'at': ('Attention transfer as RepDistiller runs it: CE + 1000·AT on every stage', TABLE1_PAIRS),
    # Table 7's other pair, WRN-40-2 → WRN-40-1, has classifiers of different widths (128 and 64
    # inputs), for which Algorithm 5's entry-by-entry penalty is undefined.
    'ijckd_distance': ("Table 7, distance penalty (the paper's Algorithm 5): CE + α·MSE(logits) + "
                       "β·‖W_t − W_s‖_F, α = β = 1, the student's own classifier at test",
                       ('resnet32x4-resnet8x4',)),
    'ijckd_joint': ("Table 7, joint training (the paper's Algorithm 4): a joint classifier trained online; "
                    'α·CE(jc(student), y) + (1−α)·CE(jc(teacher), y) + β·MSE, α = 0.2, β = 1',
                    ('resnet32x4-resnet8x4', 'wrn_40_2-wrn_40_1')),
    'ce_teacher_classifier': ('Table 6: the student backbone (+ 1×1 connector) trained on hard labels only, '
                              'under the frozen teacher classifier; compare configs/cifar_teacher.py',
                              ('wrn_40_2-wrn_40_1', 'resnet56-resnet20', 'resnet110-resnet32',
                               'resnet32x4-resnet8x4')),
}
VARIANTS = tuple(f'{method},{variant}' for method, (_, variants) in METHODS.items() for variant in variants)


def get_config(arg='ijckd'):
    method, variant = split_method(arg, METHODS, 'configs/cifar.py', 'kd,resnet32x4-resnet8x4')
    return cifar_distillation_config(method, variant)

"""Decoupled Knowledge Distillation: Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022.

Exactly mdistiller's definition (github.com/megvii-research/mdistiller, commit a08d46f,
mdistiller/distillers/DKD.py): `dkd_loss` (lines 8-32), `_get_gt_mask`, `_get_other_mask`,
`cat_mask` (lines 35-51) and `DKD.forward_train` (lines 65-84):

    loss_ce  = ce_weight · CE(student, labels)
    loss_dkd = min(epoch / warmup, 1) · (alpha · TCKD + beta · NCKD)

    TCKD = T² / B · KL([p_t, 1 − p_t]_teacher ‖ [p_t, 1 − p_t]_student)   (target vs the rest)
    NCKD = T² / B · KL(softmax(t/T − 1000·gt) ‖ softmax(s/T − 1000·gt))   (the other classes)

with `epoch` counted from 1 (mdistiller/engine/trainer.py starts at epoch = 1 and passes it to
forward_train), here `outputs.epoch`. Defaults: mdistiller/engine/cfg.py lines 162-167 (CFG.DKD:
CE_WEIGHT 1.0, ALPHA 1.0, BETA 8.0, T 4.0, WARMUP 20), its CIFAR-100 setting; the pairs whose
configs/cifar100/dkd/*.yaml set another BETA, and ImageNet's settings, are in configs/common.py.
"""
import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, total

# mdistiller/engine/cfg.py lines 162-167, the defaults every CIFAR-100 yaml starts from. Floats
# (mdistiller's WARMUP is the int 20) so that a config field also takes a fractional override.
DEFAULTS = {'ce_weight': 1.0, 'alpha': 1.0, 'beta': 8.0, 'temperature': 4.0, 'warmup': 20.0}

# The logit offset mdistiller subtracts at the target class to leave it out of NCKD's softmaxes.
TARGET_OFFSET = 1000.0


def kl_div_sum(log_input, target):
    """F.kl_div(log_input, target, reduction='sum') (mdistiller's size_average=False):
    Σ target·(log target − log_input), with 0·log 0 = 0 as torch's xlogy."""
    return jnp.sum(xlogy(target, target) - target * log_input)


def cat_mask(probabilities, gt_mask, other_mask):
    """mdistiller's cat_mask: [Σ p over the target class, Σ p over the others], [batch, 2]."""
    return jnp.concatenate([jnp.sum(probabilities * gt_mask, axis=1, keepdims=True),
                            jnp.sum(probabilities * other_mask, axis=1, keepdims=True)], axis=1)


def dkd_loss(student_logits, teacher_logits, labels, alpha, beta, temperature):
    """mdistiller's dkd_loss, line for line, in float32."""
    student_logits = student_logits.astype(jnp.float32)
    teacher_logits = teacher_logits.astype(jnp.float32)
    batch = labels.shape[0]
    # _get_gt_mask / _get_other_mask: one-hot of the label and its complement.
    gt_mask = jax.nn.one_hot(labels.reshape(-1), student_logits.shape[1], dtype=jnp.float32)
    other_mask = 1.0 - gt_mask
    pred_student = cat_mask(jax.nn.softmax(student_logits / temperature, axis=1), gt_mask, other_mask)
    pred_teacher = cat_mask(jax.nn.softmax(teacher_logits / temperature, axis=1), gt_mask, other_mask)
    tckd = kl_div_sum(jnp.log(pred_student), pred_teacher) * temperature ** 2 / batch
    # NCKD: the target class pushed 1000 below (its probability underflows to exactly 0).
    # mdistiller computes the teacher's side as F.softmax and lets kl_div take its log (xlogy);
    # here its log comes from log_softmax instead, so that the term is finite where the target
    # probability is 0 and its gradient with respect to the teacher logits is too (torch's is
    # NaN there: xlogy's derivative at 0). The value is the same: 0·(finite) = 0 = xlogy(0, 0).
    # mdistiller never differentiates the teacher (torch.no_grad), nor does this project
    # (distillation.forward stops the teacher's gradient), so the difference is never used.
    log_teacher_part2 = jax.nn.log_softmax(teacher_logits / temperature - TARGET_OFFSET * gt_mask, axis=1)
    log_student_part2 = jax.nn.log_softmax(student_logits / temperature - TARGET_OFFSET * gt_mask, axis=1)
    nckd = (jnp.sum(jnp.exp(log_teacher_part2) * (log_teacher_part2 - log_student_part2))
            * temperature ** 2 / batch)
    return alpha * tckd + beta * nckd


def warmup_factor(epoch, warmup):
    """forward_train's min(epoch / warmup, 1.0), epoch counted from 1."""
    return jnp.minimum(jnp.asarray(epoch, jnp.float32) / warmup, 1.0)


def loss(outputs, labels, settings):
    if outputs.epoch is None:
        raise ValueError("DKD's warm-up reads outputs.epoch (the step's epoch counted from 1); "
                         'the train step passed none.')
    return total({
        'ce': settings['ce_weight'] * cross_entropy(outputs.student_logits, labels),
        'dkd': warmup_factor(outputs.epoch, settings['warmup']) * dkd_loss(
            outputs.student_logits, outputs.teacher_logits, labels,
            settings['alpha'], settings['beta'], settings['temperature']),
    })


def check(settings):
    if settings['temperature'] <= 0:
        raise ValueError(f"DKD's temperature must be > 0, got {settings['temperature']}.")
    if settings['warmup'] < 1:
        raise ValueError(f"DKD's warmup must be ≥ 1 epoch (the loss is scaled by min(epoch / warmup, 1), "
                         f"epochs counted from 1), got {settings['warmup']}.")


OBJECTIVE = Objective(loss, evaluation_classifier='student', defaults=DEFAULTS,
                      uses_teacher=True, uses_connector=False, check=check)

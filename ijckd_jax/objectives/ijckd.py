"""IJCKD, the paper's Algorithm 3 and Eq. 8: the student backbone and connector under the
frozen teacher classifier g_t,
    α_ce·CE(g_t(avg_pool(conn(f_s))), y) + α_lm·l_lm(that, logits_t) [+ β_fm·MSE(conn(f_s), f_t)].

l_lm is MSE by default; Table 4 compares negative cosine similarity (α_lm = 10) and
cross-entropy to soft labels. β_fm > 0 gives Table 3's ce+fm and ce+sr+fm rows.
"""
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import (cross_entropy, mse, negative_cosine_similarity,
                                         soft_cross_entropy, total)

LOGIT_LOSSES = {'mse': mse, 'cosine': negative_cosine_similarity, 'ce': soft_cross_entropy}


def loss(outputs, labels, settings):
    logit_loss = LOGIT_LOSSES[settings['logit_loss']]
    terms = {
        'ce': settings['alpha_ce'] * cross_entropy(outputs.teacher_classifier_logits, labels),
        'logit_matching': settings['alpha_lm'] * logit_loss(outputs.teacher_classifier_logits,
                                                            outputs.teacher_logits),
    }
    if settings['beta_fm']:
        terms['feature_matching'] = settings['beta_fm'] * mse(outputs.student_features,
                                                              outputs.teacher_features)
    return total(terms)


def check(settings):
    if settings['logit_loss'] not in LOGIT_LOSSES:
        raise ValueError(f"Unknown logit loss '{settings['logit_loss']}'; valid logit losses: "
                         f"{', '.join(LOGIT_LOSSES)}.")


OBJECTIVE = Objective(loss, evaluation_classifier='teacher',
                      defaults={'alpha_ce': 1.0, 'alpha_lm': 1.0, 'beta_fm': 0.0, 'logit_loss': 'mse'},
                      uses_teacher=True, uses_connector=True, check=check)

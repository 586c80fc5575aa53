"""SRRL as the paper's Algorithm 1 writes it: CE on the student's own logits
+ α·MSE(g_t(avg_pool(conn(f_s))), logits_t) + β·MSE(conn(f_s), f_t).

α and β, which the paper leaves open, default to 1 (docs/fidelity.md compares this with
SRRL's and SimKD's code).
"""
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, mse, total


def loss(outputs, labels, settings):
    return total({
        'ce': cross_entropy(outputs.student_logits, labels),
        'logit_matching': settings['alpha'] * mse(outputs.teacher_classifier_logits, outputs.teacher_logits),
        'feature_matching': settings['beta'] * mse(outputs.student_features, outputs.teacher_features),
    })


OBJECTIVE = Objective(loss, evaluation_classifier='student', defaults={'alpha': 1.0, 'beta': 1.0},
                      uses_teacher=True, uses_connector=True)

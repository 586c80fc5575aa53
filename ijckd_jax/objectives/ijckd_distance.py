"""IJCKD with a distance penalty, the paper's Algorithm 5:
    CE(logits_s, y) + α·MSE(logits_s, logits_t) + β·‖W_t − W_s‖_F,  α = β = 1,
on the two classifiers' weights; the student's own classifier predicts at test time.
"""
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, frobenius_distance, mse, total


def loss(outputs, labels, settings):
    student_weight, teacher_weight = outputs.student_classifier_weight, outputs.teacher_classifier_weight
    if student_weight.shape != teacher_weight.shape:
        raise ValueError(f'ijckd_distance compares the two classifiers weight for weight, but the '
                         f'student classifier is {student_weight.shape} and the teacher '
                         f'classifier {teacher_weight.shape}; pick a pair of equal feature widths.')
    return total({
        'ce': cross_entropy(outputs.student_logits, labels),
        'logit_matching': settings['alpha'] * mse(outputs.student_logits, outputs.teacher_logits),
        'classifier_distance': settings['beta'] * frobenius_distance(teacher_weight, student_weight),
    })


OBJECTIVE = Objective(loss, evaluation_classifier='student', defaults={'alpha': 1.0, 'beta': 1.0},
                      uses_teacher=True, uses_connector=False)

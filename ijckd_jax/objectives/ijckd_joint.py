"""IJCKD with joint training, the paper's Algorithm 4: a joint classifier jc trained online on
the student's (connected) and the teacher's features,
    α·CE(jc(f_s'), y) + (1 − α)·CE(jc(f_t), y) + β·MSE(jc(f_s'), jc(f_t)),  α = 0.2, β = 1;
jc predicts at test time.
"""
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, mse, total


def loss(outputs, labels, settings):
    alpha = settings['alpha']
    return total({
        'ce': alpha * cross_entropy(outputs.joint_student_logits, labels),
        'teacher_ce': (1 - alpha) * cross_entropy(outputs.joint_teacher_logits, labels),
        'logit_matching': settings['beta'] * mse(outputs.joint_student_logits, outputs.joint_teacher_logits),
    })


def check(settings):
    if settings['alpha'] > 1:
        raise ValueError("ijckd_joint's alpha weighs student against teacher CE and must be in "
                         f"[0, 1], got {settings['alpha']}.")


OBJECTIVE = Objective(loss, evaluation_classifier='joint', defaults={'alpha': 0.2, 'beta': 1.0},
                      uses_teacher=True, uses_connector=True, check=check)

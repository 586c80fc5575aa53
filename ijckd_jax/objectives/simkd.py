"""SimKD, the paper's Algorithm 2: MSE(conn(f_s), f_t) only; the frozen teacher classifier
predicts at test time."""
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import mse, total


def loss(outputs, labels, settings):
    return total({'feature_matching': mse(outputs.student_features, outputs.teacher_features)})


OBJECTIVE = Objective(loss, evaluation_classifier='teacher', defaults={}, uses_teacher=True,
                      uses_connector=True)

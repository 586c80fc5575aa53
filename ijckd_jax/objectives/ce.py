"""Cross-entropy alone on the student's own classifier: vanilla students and the teachers."""
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, total


def loss(outputs, labels, settings):
    return total({'ce': cross_entropy(outputs.student_logits, labels)})


OBJECTIVE = Objective(loss, evaluation_classifier='student', defaults={}, uses_teacher=False,
                      uses_connector=False)

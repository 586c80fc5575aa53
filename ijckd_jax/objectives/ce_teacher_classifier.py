"""The paper's Table 6: the student backbone and connector under the frozen teacher
classifier, trained on hard labels only."""
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, total


def loss(outputs, labels, settings):
    return total({'ce': cross_entropy(outputs.teacher_classifier_logits, labels)})


OBJECTIVE = Objective(loss, evaluation_classifier='teacher', defaults={}, uses_teacher=True,
                      uses_connector=True)

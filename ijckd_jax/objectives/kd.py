"""Hinton et al.'s knowledge distillation, with RepDistiller's weights (0.1 CE + 0.9 KL, T = 4)."""
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, kl_divergence_with_temperature, total


def loss(outputs, labels, settings):
    return total({
        'ce': settings['ce_weight'] * cross_entropy(outputs.student_logits, labels),
        'kd': settings['kd_weight'] * kl_divergence_with_temperature(
            outputs.student_logits, outputs.teacher_logits, settings['temperature']),
    })


def check(settings):
    if settings['temperature'] <= 0:
        raise ValueError(f"The KD temperature must be > 0, got {settings['temperature']}.")


OBJECTIVE = Objective(loss, evaluation_classifier='student',
                      defaults={'ce_weight': 0.1, 'kd_weight': 0.9, 'temperature': 4.0},
                      uses_teacher=True, uses_connector=False, check=check)

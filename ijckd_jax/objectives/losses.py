"""The loss terms the objectives combine: pure functions of arrays, as torch.nn.functional
computes them (MSE is the mean over all elements, as F.mse_loss)."""
import jax
import jax.numpy as jnp
import optax


def mse(prediction, target):
    """torch.nn.functional.mse_loss: the mean over all elements."""
    return jnp.mean(jnp.square(prediction.astype(jnp.float32) - target.astype(jnp.float32)))


def cross_entropy(logits, labels):
    """torch.nn.functional.cross_entropy with integer labels, averaged over the batch."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()


def soft_cross_entropy(logits, target_logits):
    """Cross-entropy to the soft labels softmax(target_logits), averaged over the batch."""
    targets = jax.nn.softmax(target_logits.astype(jnp.float32))
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


def negative_cosine_similarity(logits, target_logits, epsilon=1e-8):
    """-mean over the batch of cos(logits, target_logits), as F.cosine_similarity(dim=1)."""
    logits, target_logits = logits.astype(jnp.float32), target_logits.astype(jnp.float32)
    norms = (jnp.maximum(jnp.linalg.norm(logits, axis=-1), epsilon)
             * jnp.maximum(jnp.linalg.norm(target_logits, axis=-1), epsilon))
    return -jnp.mean(jnp.sum(logits * target_logits, axis=-1) / norms)


def kl_divergence_with_temperature(student_logits, teacher_logits, temperature):
    """Hinton's KD term: T² · KL(softmax(t/T) ‖ softmax(s/T)), averaged over the batch."""
    student_log_probabilities = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature)
    teacher_log_probabilities = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / temperature)
    teacher_probabilities = jnp.exp(teacher_log_probabilities)
    divergence = jnp.sum(teacher_probabilities * (teacher_log_probabilities - student_log_probabilities), -1)
    return temperature ** 2 * divergence.mean()


def frobenius_distance(weight, other_weight):
    """‖weight − other_weight‖_F (torch.norm's default), with a zero gradient where the two are
    equal: jnp.linalg.norm's gradient is NaN there, which would poison a whole training step."""
    difference = (weight.astype(jnp.float32) - other_weight.astype(jnp.float32)).ravel()
    return optax.safe_norm(difference, min_norm=0.0)


def total(terms):
    """(the sum of the weighted terms, the terms): what every objective returns."""
    return sum(terms.values()), terms


# RepDistiller's train_student.py adds every method's term to γ·CE + α·KD (its -r, -a flags);
# its published runs of the feature methods use γ = 1, α = 0 (scripts/run_cifar_distill.sh).
CLASSIFICATION_DEFAULTS = {'ce_weight': 1.0, 'kd_weight': 0.0, 'temperature': 4.0}


def classification_terms(outputs, labels, settings):
    """γ·CE(student, labels) and α·KD(student, teacher) with RepDistiller's DistillKL."""
    return {'ce': settings['ce_weight'] * cross_entropy(outputs.student_logits, labels),
            'kd': settings['kd_weight'] * kl_divergence_with_temperature(
                outputs.student_logits, outputs.teacher_logits, settings['temperature'])}


def check_temperature(settings):
    if settings['temperature'] <= 0:
        raise ValueError(f"The KD temperature must be > 0, got {settings['temperature']}.")

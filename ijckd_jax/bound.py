"""The paper's error bound (Theorem 1) and classifier distance (Figure 4), measured.

With predictions taken as the argmax, for every example
    [f_s wrong] ≤ [f_t wrong] + [f_s ≠ g_t∘Φ_s] + [g_t∘Φ_s ≠ f_t],
so err_s ≤ err_t + Δ1 + Δ2 holds exactly for the measured 0-1 rates, where f_s is the
student's evaluation classifier, f_t = g_t∘Φ_t the teacher, and g_t∘Φ_s the frozen teacher
classifier on the student's (connector-aligned) features. Δ1 and Δ2 are also reported as the
mean L1 distance between the two probability vectors, the paper's E|·|.
"""
import jax
import jax.numpy as jnp


def mismatches(logits, other_logits, mask):
    """100 × the masked count of examples whose predicted classes differ (a percentage once averaged)."""
    return 100.0 * jnp.sum((jnp.argmax(logits, -1) != jnp.argmax(other_logits, -1)) * mask)


def probability_distance(logits, other_logits, mask):
    """The masked sum over examples of ‖softmax(logits) − softmax(other_logits)‖₁."""
    difference = jax.nn.softmax(logits.astype(jnp.float32)) - jax.nn.softmax(other_logits.astype(jnp.float32))
    return jnp.sum(jnp.abs(difference).sum(-1) * mask)


def bound_sums(student_logits, cross_logits, teacher_logits, labels, mask):
    """Sums over a batch of each term of Theorem 1; divided by the example count they are
    err_s, err_t, Δ1, Δ2 in percent and Δ1, Δ2 as mean L1 distances.

    cross_logits are g_t∘Φ_s: the teacher classifier on the student's features.
    """
    wrong = lambda logits: 100.0 * jnp.sum((jnp.argmax(logits, -1) != labels) * mask)  # noqa: E731
    return {'student_error': wrong(student_logits), 'teacher_error': wrong(teacher_logits),
            'delta1': mismatches(student_logits, cross_logits, mask),
            'delta2': mismatches(cross_logits, teacher_logits, mask),
            'delta1_l1': probability_distance(student_logits, cross_logits, mask),
            'delta2_l1': probability_distance(cross_logits, teacher_logits, mask)}


def classifier_comparison(student_weight, teacher_weight):
    """‖W_t − W_s‖_F (Algorithm 5's penalty, the paper's Figure 4) and the cosine similarity
    of the two weight matrices taken as vectors."""
    student_weight = student_weight.astype(jnp.float32).ravel()
    teacher_weight = teacher_weight.astype(jnp.float32).ravel()
    cosine = jnp.dot(student_weight, teacher_weight) / (
        jnp.linalg.norm(student_weight) * jnp.linalg.norm(teacher_weight))
    return {'classifier_distance': jnp.linalg.norm(teacher_weight - student_weight),
            'classifier_cosine': cosine}

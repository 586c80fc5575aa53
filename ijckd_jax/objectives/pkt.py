"""Probabilistic knowledge transfer, PKT (Passalis & Tefas, ECCV 2018, "Learning deep
representations with probabilistic knowledge transfer"), as RepDistiller trains it
(github.com/HobbitLong/RepDistiller: distiller_zoo/PKT.py PKT.cosine_similarity_loss, the authors'
function of github.com/passalis/probabilistic_kt nn/pkt.py; helper/loops.py train_distill,
--distill pkt):

    γ·CE + α·KD + β·mean_ij(q_ij · log((q_ij + ε) / (p_ij + ε))),  ε = 1e-7

on the pooled features feat[-1] (`student_pooled`, `teacher_pooled`): p and q are the
row-normalised cosine similarities (cos + 1)/2 of the student's and the teacher's features, with
the published weights γ = 1, α = 0, β = 30000 (scripts/run_cifar_distill.sh -a 0 -b 30000).
"""
import jax
import jax.numpy as jnp
import optax

from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import CLASSIFICATION_DEFAULTS, check_temperature, classification_terms, total

EPSILON = 1e-7  # cosine_similarity_loss's eps, in the normalisation and in the logarithm
# Full float32 products whatever jax_default_matmul_precision says (TF32 on recent GPUs), as
# torch computes them.
PRECISION = jax.lax.Precision.HIGHEST


def conditional_probabilities(features):
    """The cosine-similarity kernel (cos + 1)/2, each row divided by its sum."""
    # sqrt(Σ x²) + eps as there; optax.safe_norm gives a zero gradient at an all-zero feature
    # vector, where torch's sqrt gives NaN.
    unit = features / (optax.safe_norm(features, 0.0, axis=1, keepdims=True) + EPSILON)
    unit = jnp.where(jnp.isnan(unit), 0.0, unit)  # output_net[output_net != output_net] = 0
    similarity = (jnp.matmul(unit, unit.T, precision=PRECISION) + 1.0) / 2.0
    return similarity / jnp.sum(similarity, axis=1, keepdims=True)


def probabilistic_transfer(student, teacher):
    """cosine_similarity_loss(student, teacher); the teacher's side is a constant (computed under
    torch.no_grad() in train_distill)."""
    student = student.astype(jnp.float32).reshape(student.shape[0], -1)
    teacher = jax.lax.stop_gradient(teacher.astype(jnp.float32).reshape(teacher.shape[0], -1))
    model, target = conditional_probabilities(student), conditional_probabilities(teacher)
    return jnp.mean(target * jnp.log((target + EPSILON) / (model + EPSILON)))


def loss(outputs, labels, settings):
    return total({**classification_terms(outputs, labels, settings),
                  'pkt': settings['beta'] * probabilistic_transfer(outputs.student_pooled, outputs.teacher_pooled)})


OBJECTIVE = Objective(loss, evaluation_classifier='student',
                      defaults={**CLASSIFICATION_DEFAULTS, 'beta': 30000.0},
                      uses_teacher=True, uses_connector=False, check=check_temperature)

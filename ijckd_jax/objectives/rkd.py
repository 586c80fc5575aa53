"""Relational knowledge distillation, RKD (Park, Kim, Lu & Cho, CVPR 2019), as RepDistiller trains
it (github.com/HobbitLong/RepDistiller: distiller_zoo/RKD.py RKDLoss, the authors' RkdDistance,
RKdAngle and pdist of github.com/lenscloth/RKD metric/loss.py and metric/utils.py in one module;
helper/loops.py train_distill, --distill rkd):

    γ·CE + α·KD + β·(w_d·smooth_l1(ψ_D(s), ψ_D(t)) + w_a·smooth_l1(ψ_A(s), ψ_A(t)))

on the pooled features feat[-1] (`student_pooled`, `teacher_pooled`), with the published weights
γ = 1, α = 0, β = 1 (scripts/run_cifar_distill.sh -a 0 -b 1) and RKDLoss's w_d = 25, w_a = 50
(here distance_weight and angle_weight, mdistiller's names: mdistiller/engine/cfg.py CFG.RKD).
ψ_D: the pairwise Euclidean distances divided by their mean over the pairs of distinct samples;
ψ_A: the cosines of the angles e_j − e_i, e_k − e_i for every triple (i, j, k).
"""
import jax
import jax.numpy as jnp
import optax

from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import CLASSIFICATION_DEFAULTS, check_temperature, classification_terms, total

PDIST_EPSILON = 1e-12      # RKDLoss.pdist's eps: the squared distances are clamped to it
NORMALIZE_EPSILON = 1e-12  # F.normalize's default eps in the angle term
# Full float32 products whatever jax_default_matmul_precision says: TF32's 10-bit inputs would
# wreck the distances, computed as ‖a‖² + ‖b‖² − 2a·b, for samples close together.
PRECISION = jax.lax.Precision.HIGHEST


def pairwise_distances(embeddings):
    """RKDLoss.pdist(e, squared=False, eps=1e-12): sqrt(clamp(‖e_i‖² + ‖e_j‖² − 2e_i·e_j, eps)),
    with a zero diagonal (assigned, so no gradient flows through it)."""
    square = jnp.sum(jnp.square(embeddings), axis=1)
    product = jnp.matmul(embeddings, embeddings.T, precision=PRECISION)
    distances = jnp.sqrt(jnp.maximum(square[:, None] + square[None, :] - 2 * product, PDIST_EPSILON))
    return jnp.where(jnp.eye(embeddings.shape[0], dtype=bool), 0.0, distances)


def normalized_distances(embeddings):
    """d / d[d > 0].mean(): the mean over the positive entries (the clamp makes every pair of
    distinct samples positive)."""
    distances = pairwise_distances(embeddings)
    positive = distances > 0
    return distances / (jnp.sum(jnp.where(positive, distances, 0.0)) / jnp.sum(positive))


def angles(embeddings):
    """The flattened [N, N, N] cosines ⟨(e_j − e_i)/‖·‖, (e_k − e_i)/‖·‖⟩: RKDLoss's
    e.unsqueeze(0) − e.unsqueeze(1), F.normalize(dim=2) and bmm."""
    differences = embeddings[None, :, :] - embeddings[:, None, :]  # [i, j] = e_j − e_i
    # optax.safe_norm: max(‖·‖, eps) with torch's zero gradient at the zero differences e_i − e_i.
    unit = differences / optax.safe_norm(differences, NORMALIZE_EPSILON, axis=2, keepdims=True)
    return jnp.einsum('ijd,ikd->ijk', unit, unit, precision=PRECISION).reshape(-1)


def smooth_l1(prediction, target):
    """F.smooth_l1_loss with beta = 1, averaged over all elements."""
    difference = jnp.abs(prediction - target)
    return jnp.mean(jnp.where(difference < 1.0, 0.5 * jnp.square(difference), difference - 0.5))


def relational_losses(student, teacher):
    """(loss_d, loss_a) of RKDLoss.forward; the teacher's side is a constant (computed under
    torch.no_grad() there)."""
    student = student.astype(jnp.float32).reshape(student.shape[0], -1)
    teacher = jax.lax.stop_gradient(teacher.astype(jnp.float32).reshape(teacher.shape[0], -1))
    return (smooth_l1(normalized_distances(student), normalized_distances(teacher)),
            smooth_l1(angles(student), angles(teacher)))


def loss(outputs, labels, settings):
    distance, angle = relational_losses(outputs.student_pooled, outputs.teacher_pooled)
    # β·(w_d·loss_d + w_a·loss_a), logged as its two parts.
    return total({**classification_terms(outputs, labels, settings),
                  'rkd_distance': settings['beta'] * settings['distance_weight'] * distance,
                  'rkd_angle': settings['beta'] * settings['angle_weight'] * angle})


OBJECTIVE = Objective(loss, evaluation_classifier='student',
                      defaults={**CLASSIFICATION_DEFAULTS, 'beta': 1.0, 'distance_weight': 25.0,
                                'angle_weight': 50.0},
                      uses_teacher=True, uses_connector=False, check=check_temperature)

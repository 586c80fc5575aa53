"""Attention transfer, AT (Zagoruyko & Komodakis, ICLR 2017, "Paying more attention to attention:
improving the performance of convolutional neural networks via attention transfer"), as
RepDistiller trains it (github.com/HobbitLong/RepDistiller: distiller_zoo/AT.py Attention, a copy of
the authors' utils.py at/at_loss in github.com/szagoruyko/attention-transfer; helper/loops.py
train_distill, --distill attention):

    γ·CE + α·KD + β·Σ_l mean((Q(feat_s[l]) − Q(feat_t[l]))²),  l over feat[1:-1],
    Q(f) = normalize(vec(mean_c |f_c|^p))

with the published weights γ = 1, α = 0, β = 1000 and p = 2 (scripts/run_cifar_distill.sh -a 0
-b 1000; Attention(p=2)). feat[1:-1] are the outputs of every stage, here `student_stages[1:]`
(stages[0] is the stem's output); the maps are NHWC, so the channel mean is over the last axis.
"""
import jax
import jax.numpy as jnp
import optax

from ijckd_jax.models.layers import pool_to_smaller
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import CLASSIFICATION_DEFAULTS, check_temperature, classification_terms, total

# F.normalize's default eps: the attention vector is divided by max(‖vec‖₂, 1e-12).
NORMALIZE_EPSILON = 1e-12


def attention(feature_map, p):
    """Attention.at: the channel mean of |f|^p, flattened over space, L2-normalised.

    RepDistiller computes f.pow(p); the paper's F^p_mean uses |f|^p. They agree for even p and
    for maps after a ReLU (every stage output AT distils); |f|^p keeps odd or fractional p a
    valid attention map on signed maps, where f.pow(p) is negative or NaN."""
    magnitude = jnp.abs(feature_map.astype(jnp.float32))
    # An integral p (the default 2) as an integer power, as torch's pow(2): exact, and its
    # gradient at 0 is 0 for p ≥ 1.
    exponent = int(p) if float(p).is_integer() else float(p)
    flat = jnp.mean(magnitude ** exponent, axis=-1).reshape(feature_map.shape[0], -1)
    # optax.safe_norm: torch's norm has a zero gradient at an all-zero map (a dead stage), a
    # plain jnp.linalg.norm a NaN one.
    return flat / optax.safe_norm(flat, NORMALIZE_EPSILON, axis=1, keepdims=True)


def attention_loss(student_map, teacher_map, p):
    """Attention.at_loss: the mean over batch and positions of the squared difference."""
    # at_loss pools the larger map to the smaller one's size (F.adaptive_avg_pool2d).
    student_map, teacher_map = pool_to_smaller(student_map.astype(jnp.float32), teacher_map.astype(jnp.float32))
    return jnp.mean(jnp.square(attention(student_map, p) - attention(teacher_map, p)))


def attention_transfer(student_stages, teacher_stages, p):
    """Σ over the pairs of stage maps of at_loss; the teacher's maps are constants, as
    train_distill computes feat_t under torch.no_grad(). Where the two lists differ in length
    (ResNet-50 → MobileNetV1 on ImageNet: 4 maps against 3), the sources zip them: the first
    maps pair up and the longer list's last ones are left out."""
    return sum(attention_loss(student_map, jax.lax.stop_gradient(teacher_map), p)
               for student_map, teacher_map in zip(student_stages, teacher_stages))


def loss(outputs, labels, settings):
    # feat[1:-1]: the stem's output (feat[0]) is not distilled.
    at = attention_transfer(outputs.student_stages[1:], outputs.teacher_stages[1:], settings['p'])
    return total({**classification_terms(outputs, labels, settings), 'at': settings['beta'] * at})


def check(settings):
    check_temperature(settings)
    if settings['p'] < 1:
        # |f|^p has an infinite slope at 0 for p < 1, and the maps after a ReLU hold exact zeros:
        # the gradient would be NaN (in RepDistiller's f.pow(p) too).
        raise ValueError(f"AT's p must be ≥ 1 (the power of the activations; p < 1 gives NaN gradients "
                         f"where an activation is 0), got {settings['p']}.")


OBJECTIVE = Objective(loss, evaluation_classifier='student',
                      defaults={**CLASSIFICATION_DEFAULTS, 'beta': 1000.0, 'p': 2.0},
                      uses_teacher=True, uses_connector=False, check=check)

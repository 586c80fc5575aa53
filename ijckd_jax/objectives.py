"""Distillation objectives: pure functions of arrays, chosen by name (paper Algorithms 1-5).

Every objective has the signature `objective(outputs, labels, weights) -> (loss, terms)`:
`outputs` holds every array the train step computed (a `DistillationOutputs`), `labels` are
integer classes, `weights` a mapping of the objective's settings; `terms` holds each weighted
part separately for logging. Nothing here is jitted, stateful or does I/O; arrays an
objective does not read are pruned by XLA when the train step is jitted.
MSE is the mean over all elements, as torch's F.mse_loss.
"""
import math
from typing import Callable, Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from ijckd_jax.objective_settings import DEFAULT_SETTINGS


class DistillationOutputs(NamedTuple):
    """Everything an objective may read; names follow the paper's Algorithms."""
    student_logits: jax.Array                  # g_s(Φ_s x): the student's own classifier
    teacher_logits: Optional[jax.Array] = None  # g_t(Φ_t x)
    student_features: Optional[jax.Array] = None  # conn(Φ_s x), at the teacher's width and size
    teacher_features: Optional[jax.Array] = None  # Φ_t x, at the common size
    teacher_classifier_logits: Optional[jax.Array] = None  # g_t(avg_pool(conn(Φ_s x)))
    joint_student_logits: Optional[jax.Array] = None  # jc(avg_pool(conn(Φ_s x)))  (Alg. 4)
    joint_teacher_logits: Optional[jax.Array] = None  # jc(avg_pool(Φ_t x))          (Alg. 4)
    student_classifier_weight: Optional[jax.Array] = None  # W_s, [features, classes]  (Alg. 5)
    teacher_classifier_weight: Optional[jax.Array] = None  # W_t, [features, classes]  (Alg. 5)


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


LOGIT_LOSSES: Dict[str, Callable] = {
    'mse': mse, 'cosine': negative_cosine_similarity, 'ce': soft_cross_entropy,
}


def kl_divergence_with_temperature(student_logits, teacher_logits, temperature):
    """Hinton's KD term: T² · KL(softmax(t/T) ‖ softmax(s/T)), averaged over the batch."""
    student_log_probabilities = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature)
    teacher_log_probabilities = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / temperature)
    teacher_probabilities = jnp.exp(teacher_log_probabilities)
    divergence = jnp.sum(teacher_probabilities * (teacher_log_probabilities - student_log_probabilities), -1)
    return temperature ** 2 * divergence.mean()


def total(terms):
    return sum(terms.values()), terms


def ce(outputs, labels, weights):
    """The student alone with its own classifier on hard labels (vanilla student, teachers)."""
    return total({'ce': cross_entropy(outputs.student_logits, labels)})


def ce_teacher_classifier(outputs, labels, weights):
    """The student backbone + connector under the frozen teacher classifier, hard labels only (Table 6)."""
    return total({'ce': cross_entropy(outputs.teacher_classifier_logits, labels)})


def kd(outputs, labels, weights):
    """Hinton et al.'s knowledge distillation."""
    return total({
        'ce': weights['ce_weight'] * cross_entropy(outputs.student_logits, labels),
        'kd': weights['kd_weight'] * kl_divergence_with_temperature(
            outputs.student_logits, outputs.teacher_logits, weights['temperature']),
    })


def srrl(outputs, labels, weights):
    """Algorithm 1: CE on the student's logits + α·MSE(g_t(pool(conn(f_s))), logits_t) + β·MSE(features)."""
    return total({
        'ce': cross_entropy(outputs.student_logits, labels),
        'logit_matching': weights['alpha'] * mse(outputs.teacher_classifier_logits, outputs.teacher_logits),
        'feature_matching': weights['beta'] * mse(outputs.student_features, outputs.teacher_features),
    })


def simkd(outputs, labels, weights):
    """Algorithm 2: MSE(conn(f_s), f_t) only."""
    return total({'feature_matching': mse(outputs.student_features, outputs.teacher_features)})


def ijckd(outputs, labels, weights):
    """Algorithm 3 (Eq. 8): α_ce·CE(g_t(pool(conn(f_s))), y) + α_lm·l_lm(that, logits_t) [+ β_fm·MSE(features)]."""
    logit_loss = LOGIT_LOSSES[weights['logit_loss']]
    terms = {
        'ce': weights['alpha_ce'] * cross_entropy(outputs.teacher_classifier_logits, labels),
        'logit_matching': weights['alpha_lm'] * logit_loss(outputs.teacher_classifier_logits,
                                                           outputs.teacher_logits),
    }
    if weights['beta_fm']:  # Table 3's ce+fm and ce+sr+fm rows
        terms['feature_matching'] = weights['beta_fm'] * mse(outputs.student_features,
                                                             outputs.teacher_features)
    return total(terms)


def ijckd_joint(outputs, labels, weights):
    """Algorithm 4: a joint classifier trained online on student and teacher features."""
    alpha = weights['alpha']
    return total({
        'ce': alpha * cross_entropy(outputs.joint_student_logits, labels),
        'teacher_ce': (1 - alpha) * cross_entropy(outputs.joint_teacher_logits, labels),
        'logit_matching': weights['beta'] * mse(outputs.joint_student_logits, outputs.joint_teacher_logits),
    })


def ijckd_distance(outputs, labels, weights):
    """Algorithm 5: CE + α·MSE(logits_s, logits_t) + β·‖W_t − W_s‖_F on the two classifiers' weights."""
    student_weight, teacher_weight = outputs.student_classifier_weight, outputs.teacher_classifier_weight
    if student_weight.shape != teacher_weight.shape:
        raise ValueError(f'ijckd_distance compares the two classifiers weight for weight, but the '
                         f'student classifier is {student_weight.shape} and the teacher '
                         f'classifier {teacher_weight.shape}; pick a pair of equal feature widths.')
    return total({
        'ce': cross_entropy(outputs.student_logits, labels),
        'logit_matching': weights['alpha'] * mse(outputs.student_logits, outputs.teacher_logits),
        'classifier_distance': weights['beta'] * jnp.linalg.norm(teacher_weight - student_weight),
    })


class Objective(NamedTuple):
    function: Callable
    evaluation_classifier: str  # 'student', 'teacher' or 'joint': which classifier predicts at test
    defaults: dict              # the objective's settings and their defaults
    uses_connector: bool
    uses_teacher: bool = True


OBJECTIVES: Dict[str, Objective] = {
    'ce': Objective(ce, 'student', DEFAULT_SETTINGS['ce'], uses_connector=False, uses_teacher=False),
    'ce_teacher_classifier': Objective(ce_teacher_classifier, 'teacher',
                                       DEFAULT_SETTINGS['ce_teacher_classifier'], uses_connector=True),
    'kd': Objective(kd, 'student', DEFAULT_SETTINGS['kd'], uses_connector=False),
    'srrl': Objective(srrl, 'student', DEFAULT_SETTINGS['srrl'], uses_connector=True),
    'simkd': Objective(simkd, 'teacher', DEFAULT_SETTINGS['simkd'], uses_connector=True),
    'ijckd': Objective(ijckd, 'teacher', DEFAULT_SETTINGS['ijckd'], uses_connector=True),
    'ijckd_joint': Objective(ijckd_joint, 'joint', DEFAULT_SETTINGS['ijckd_joint'], uses_connector=True),
    'ijckd_distance': Objective(ijckd_distance, 'student', DEFAULT_SETTINGS['ijckd_distance'],
                                uses_connector=False),
}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"Unknown objective '{name}'; valid objectives: {', '.join(OBJECTIVES)}.")
    return OBJECTIVES[name]


def resolve_weights(name: str, overrides=None) -> dict:
    """The objective's settings: its defaults updated by `overrides`, every value checked."""
    objective = get_objective(name)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(objective.defaults))
    if unknown:
        valid = ', '.join(objective.defaults) or 'none'
        raise ValueError(f"Objective '{name}' has no setting {unknown}; its settings: {valid}.")
    weights = {**objective.defaults, **overrides}
    for key, value in weights.items():
        if key == 'logit_loss':
            if value not in LOGIT_LOSSES:
                raise ValueError(f"Unknown logit loss '{value}'; valid logit losses: "
                                 f"{', '.join(LOGIT_LOSSES)}.")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"Setting {key}={value!r} of objective '{name}' must be a finite "
                             'number ≥ 0.')
    if name == 'kd' and weights['temperature'] <= 0:
        raise ValueError(f"The KD temperature must be > 0, got {weights['temperature']}.")
    if name == 'ijckd_joint' and weights['alpha'] > 1:
        raise ValueError(f"ijckd_joint's alpha weighs student against teacher CE and must be in [0, 1], got {weights['alpha']}.")
    return weights

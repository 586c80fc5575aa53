"""CRD, contrastive representation distillation (Tian et al., ICLR 2020), as RepDistiller trains
it (github.com/HobbitLong/RepDistiller: crd/criterion.py CRDLoss, ContrastLoss, Embed;
crd/memory.py ContrastMemory; dataset/cifar100.py CIFAR100InstanceSample, mode 'exact';
train_student.py --distill crd):

    γ·CE + α·KD + β·(L_NCE(student anchor) + L_NCE(teacher anchor))

with the published weights γ = 1, α = 0, β = 0.8 (scripts/run_cifar_distill.sh; "CRD+KD" is
α = 1), feature dimension 128, 16,384 negatives, τ = 0.07 and memory momentum 0.5. Both
networks' pooled features (feat[-1]) are embedded (a linear layer, then L2 normalisation)
and scored against a memory bank of the other network's embeddings, one row per training
example: the example's own row (the positive) and 16,384 rows of examples of other classes,
drawn uniformly without replacement (with replacement where a class has fewer), as
CIFAR100InstanceSample draws them. The normalising constants Z are set from the first batch
and kept; after scoring, the batch's rows are moved towards its new embeddings (momentum) and
renormalised. The embeddings train with the student (train_student.py's trainable_list); the
banks and Z are state without gradients, saved and resumed with the run; none is exported.
"""
import math
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.objectives import Objective
from ijckd_jax.models.layers import torch_bias_init, torch_linear_init
from ijckd_jax.objectives.losses import CLASSIFICATION_DEFAULTS, check_temperature, classification_terms, total

EPSILON = 1e-7  # crd/criterion.py's eps


class Embed(nn.Module):
    """crd/criterion.py Embed: a linear layer, then division by the L2 norm."""
    dimension: int

    @nn.compact
    def __call__(self, features):
        embedded = nn.Dense(self.dimension, kernel_init=torch_linear_init,
                            bias_init=torch_bias_init(features.shape[-1]), name='linear')(features.astype(jnp.float32))
        return embedded / jnp.sqrt(jnp.sum(jnp.square(embedded), axis=-1, keepdims=True))


def draw_negatives(key, labels, split_labels, count):
    """[batch, count] positions of examples of other classes than each label's, uniform: without
    replacement where the split has at least `count` of them, with replacement where it has fewer
    (CIFAR100InstanceSample: np.random.choice(cls_negative[target], k, replace=k > len(...)))."""
    other = split_labels[None, :] != labels[:, None]  # [batch, examples]
    available = jnp.sum(other, axis=1)
    subset_key, replacement_key = jax.random.split(key)
    # The `count` smallest of independent uniform scores are a uniform subset of that size.
    scores = jnp.where(other, jax.random.uniform(subset_key, other.shape), 2.0)
    subset = jax.lax.top_k(-scores, count)[1] if count <= other.shape[1] else None
    # The u-th example of another class, u uniform below their number.
    draws = jax.random.uniform(replacement_key, (labels.shape[0], count))
    ranks = jnp.floor(draws * available[:, None]).astype(jnp.int32) + 1
    with_replacement = jax.vmap(jnp.searchsorted)(jnp.cumsum(other, axis=1), ranks)
    if subset is None:
        return with_replacement.astype(jnp.int32)
    return jnp.where((available < count)[:, None], with_replacement, subset).astype(jnp.int32)


def bank_init(key, examples, dimension):
    """ContrastMemory's buffers: uniform in ±1/√(dimension / 3)."""
    bound = 1.0 / math.sqrt(dimension / 3)
    return jax.random.uniform(key, (examples, dimension), jnp.float32, -bound, bound)


def moved(bank, positions, embeddings, momentum):
    """ContrastMemory's update: the batch's rows moved towards its embeddings, renormalised."""
    rows = bank[positions] * momentum + jax.lax.stop_gradient(embeddings) * (1 - momentum)
    return bank.at[positions].set(rows / jnp.sqrt(jnp.sum(jnp.square(rows), axis=-1, keepdims=True)))


class ContrastiveMemory(nn.Module):
    """CRDLoss's embeddings and ContrastMemory: the scores of every example of the batch against
    its positive and negatives, in both directions, and the banks updated."""
    examples: int
    dimension: int
    negatives: int
    temperature: float
    momentum: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, student_output, teacher_output, examples, train: bool):
        student = Embed(self.dimension, name='embed_s')(student_output.pooled)
        teacher = Embed(self.dimension, name='embed_t')(jax.lax.stop_gradient(teacher_output.pooled))
        key = self.make_rng('params') if self.is_initializing() else None
        student_bank, teacher_bank = (
            self.variable('batch_stats', name, lambda key=key, index=index: bank_init(
                jax.random.fold_in(key, index), self.examples, self.dimension))
            for index, name in enumerate(('memory_v1', 'memory_v2')))
        normalizers = {name: self.variable('batch_stats', name, lambda: jnp.full((), -1.0, jnp.float32))
                       for name in ('z_v1', 'z_v2')}
        if not train or examples is None:
            return {}
        labels = examples.split_labels[examples.positions]
        negatives = draw_negatives(examples.key, labels, examples.split_labels, self.negatives)
        contrast = jnp.concatenate([examples.positions[:, None], negatives], axis=1)  # [batch, K + 1]
        # out_v1: the student's embedding against the teacher's bank; out_v2: the reverse.
        scores = {'z_v1': self.score(teacher_bank.value[contrast], student),
                  'z_v2': self.score(student_bank.value[contrast], teacher)}
        for name, score in scores.items():
            # Z: set from the first batch's scores (a constant from then on), never trained.
            current = normalizers[name].value
            normalizers[name].value = jnp.where(current < 0, jax.lax.stop_gradient(score.mean()) * self.examples,
                                                current)
            scores[name] = score / normalizers[name].value
        student_bank.value = moved(student_bank.value, examples.positions, student, self.momentum)
        teacher_bank.value = moved(teacher_bank.value, examples.positions, teacher, self.momentum)
        return {'student_scores': scores['z_v1'], 'teacher_scores': scores['z_v2'], 'contrast': contrast,
                'examples': jnp.float32(self.examples)}

    def score(self, rows, embeddings):
        """exp(⟨bank row, embedding⟩ / τ) for each of an example's K + 1 rows."""
        return jnp.exp(jnp.einsum('bkd,bd->bk', rows, embeddings) / self.temperature)


def contrast_loss(scores, examples):
    """crd/criterion.py ContrastLoss (the paper's Eq. 18): the NCE loss of the positive (column 0)
    against K negatives under the uniform noise distribution 1 / examples, summed, per example."""
    noise = (scores.shape[1] - 1) / examples
    positive, negative = scores[:, 0], scores[:, 1:]
    log_positive = jnp.log(positive / (positive + noise + EPSILON))
    log_negative = jnp.log(noise / (negative + noise + EPSILON))
    return -(jnp.sum(log_positive) + jnp.sum(log_negative)) / scores.shape[0]


def loss(outputs, labels, settings):
    head = outputs.head
    contrastive = (contrast_loss(head['student_scores'], head['examples'])
                   + contrast_loss(head['teacher_scores'], head['examples']))
    return total({**classification_terms(outputs, labels, settings), 'crd': settings['beta'] * contrastive})


def head(settings, student_shapes, teacher_shapes, dtype, examples=None):
    if examples is None:
        raise ValueError("CRD keeps a memory bank with a row per training example: it trains from a split "
                         'held on the devices (config.data.on_device=True), which gives its size.')
    return ContrastiveMemory(examples, int(settings['feature_dimension']), int(settings['negatives']),
                             settings['temperature_nce'], settings['momentum'], dtype)


def check(settings):
    check_temperature(settings)
    for name in ('feature_dimension', 'negatives'):
        if settings[name] < 1 or settings[name] != int(settings[name]):
            raise ValueError(f"CRD's {name} must be a whole number ≥ 1, got {settings[name]}.")
    if settings['temperature_nce'] <= 0:
        raise ValueError(f"CRD's temperature_nce must be > 0, got {settings['temperature_nce']}.")
    if settings['momentum'] >= 1:
        raise ValueError(f"CRD's momentum must be below 1, got {settings['momentum']}.")


OBJECTIVE = Objective(loss, evaluation_classifier='student',
                      defaults={**CLASSIFICATION_DEFAULTS, 'beta': 0.8, 'feature_dimension': 128, 'negatives': 16384,
                                'temperature_nce': 0.07, 'momentum': 0.5},
                      uses_teacher=True, uses_connector=False, check=check, head=head, uses_examples=True)

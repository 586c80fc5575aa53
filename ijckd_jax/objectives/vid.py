"""VID, variational information distillation (Ahn et al., CVPR 2019), as RepDistiller trains it
(github.com/HobbitLong/RepDistiller: distiller_zoo/VID.py VIDLoss, code of the authors;
train_student.py --distill vid):

    γ·CE + α·KD + β·Σ_l mean(½((μ_l(feat_s[l]) − feat_t[l])² / σ_l² + log σ_l²)),  l over feat[1:-1]

with the published weights γ = 1, α = 0, β = 1 (scripts/run_cifar_distill.sh). Each pair has its
own estimator: μ_l three 1×1 convolutions without bias (ReLU between), σ_l² = softplus(log_scale)
+ ε per teacher channel, started at init_pred_var; they train with the student (train_student.py
appends criterion_kd to trainable_list) and are not exported.
"""
import math
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.layers import Conv2d, pool_to_smaller, torch_conv_init
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import CLASSIFICATION_DEFAULTS, check_temperature, classification_terms, total


class VariationalEstimator(nn.Module):
    """One VIDLoss: the mean μ(student map) and the variance σ² of the teacher's map."""
    teacher_channels: int
    init_pred_var: float
    epsilon: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, student_map, teacher_map):
        # VIDLoss pools the larger map to the smaller one's size before regressing.
        student_map, teacher_map = pool_to_smaller(student_map, teacher_map)
        mean = student_map
        for index in (0, 2, 4):  # the indices of nn.Sequential's convolutions in VIDLoss.regressor
            if index:
                mean = nn.relu(mean)
            mean = Conv2d(self.teacher_channels, 1, dtype=self.dtype, kernel_init=torch_conv_init,
                          name=f'regressor.{index}')(mean)
        start = math.log(math.exp(self.init_pred_var - self.epsilon) - 1.0)
        log_scale = self.param('log_scale', nn.initializers.constant(start), (self.teacher_channels,), jnp.float32)
        variance = jax.nn.softplus(log_scale) + self.epsilon
        return mean.astype(jnp.float32), teacher_map.astype(jnp.float32), variance


class VariationalEstimators(nn.Module):
    """A VariationalEstimator for each pair of intermediate maps feat[1:-1]."""
    teacher_channels: tuple
    init_pred_var: float
    epsilon: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, student_output, teacher_output, examples, train: bool):
        pairs = zip(student_output.stages[1:], teacher_output.stages[1:], self.teacher_channels)
        estimates = [VariationalEstimator(channels, self.init_pred_var, self.epsilon, self.dtype, name=str(index))(
            student_map, teacher_map) for index, (student_map, teacher_map, channels) in enumerate(pairs)]
        means, targets, variances = zip(*estimates)
        return {'means': means, 'targets': targets, 'variances': variances}


def head(settings, student_shapes, teacher_shapes, dtype, examples=None):
    if len(student_shapes.stages) != len(teacher_shapes.stages):
        raise ValueError(f'VID pairs the intermediate maps of student and teacher, but the student exposes '
                         f'{len(student_shapes.stages)} and the teacher {len(teacher_shapes.stages)}; '
                         'choose models of the same number of stages.')
    channels = tuple(shape.shape[-1] for shape in teacher_shapes.stages[1:])
    return VariationalEstimators(channels, settings['init_pred_var'], settings['epsilon'], dtype)


def negative_log_likelihood(mean, target, variance):
    """VIDLoss.forward: the Gaussian's negative log-likelihood without its constant, averaged."""
    return jnp.mean(0.5 * (jnp.square(mean - target) / variance + jnp.log(variance)))


def loss(outputs, labels, settings):
    head = outputs.head
    likelihood = sum(negative_log_likelihood(mean, target, variance)
                     for mean, target, variance in zip(head['means'], head['targets'], head['variances']))
    return total({**classification_terms(outputs, labels, settings), 'vid': settings['beta'] * likelihood})


def check(settings):
    check_temperature(settings)
    if settings['init_pred_var'] <= settings['epsilon']:
        raise ValueError(f"VID's init_pred_var must exceed epsilon ({settings['epsilon']}), "
                         f"got {settings['init_pred_var']}.")


OBJECTIVE = Objective(loss, evaluation_classifier='student',
                      defaults={**CLASSIFICATION_DEFAULTS, 'beta': 1.0, 'init_pred_var': 5.0, 'epsilon': 1e-5},
                      uses_teacher=True, uses_connector=False, check=check, head=head)

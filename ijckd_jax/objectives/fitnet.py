"""FitNet (Romero et al., ICLR 2015, "FitNets: hints for thin deep nets") as RepDistiller
trains it (github.com/HobbitLong/RepDistiller: distiller_zoo/FitNet.py HintLoss,
models/util.py ConvReg, train_student.py --distill hint):

    γ·CE + α·KD + β·MSE(ConvReg(feat_s[hint_layer]), feat_t[hint_layer])

with the published weights γ = 1, α = 0, β = 100 and hint_layer 2 (scripts/run_cifar_distill.sh).
ConvReg, a convolution + BatchNorm + ReLU that maps the student's hint map onto the teacher's,
trains with the student (it is in train_student.py's trainable_list) and is not exported.
"""
from typing import Any

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.layers import BatchNorm, torch_bias_init, torch_conv_init
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import CLASSIFICATION_DEFAULTS, check_temperature, classification_terms, mse, total


def check_hint_sizes(student_size, teacher_size):
    """ConvReg maps a student map twice, half, or at least the teacher map's size."""
    if not (2 * student_size == teacher_size or student_size >= teacher_size):
        raise ValueError(f'FitNet cannot regress a {student_size}×{student_size} student map onto a '
                         f'{teacher_size}×{teacher_size} teacher map (RepDistiller ConvReg: the student map '
                         "must be twice, half, or at least the teacher's size); choose another hint_layer.")


def hint_convolution(student_size, teacher_size, student_channels, teacher_channels, dtype):
    """ConvReg's convolution: stride 2 where the student's map is twice the teacher's, a stride-2
    transposed convolution where it is half, else a valid convolution that shrinks it."""
    check_hint_sizes(student_size, teacher_size)
    common = dict(dtype=dtype, param_dtype=jnp.float32, kernel_init=torch_conv_init, name='conv')
    if student_size == 2 * teacher_size:
        return nn.Conv(teacher_channels, (3, 3), strides=2, padding=((1, 1), (1, 1)),
                       bias_init=torch_bias_init(student_channels * 9), **common)
    if 2 * student_size == teacher_size:
        # torch's ConvTranspose2d(4, stride 2, padding 1): pad the dilated input by 4 - 1 - 1.
        # Its fan_in is computed from the weight [C_in, C_out, 4, 4]: C_out · 16.
        return nn.ConvTranspose(teacher_channels, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                                transpose_kernel=True, bias_init=torch_bias_init(teacher_channels * 16),
                                **common)
    size = 1 + student_size - teacher_size
    return nn.Conv(teacher_channels, (size, size), padding='VALID',
                   bias_init=torch_bias_init(student_channels * size * size), **common)


class HintRegressor(nn.Module):
    """RepDistiller's ConvReg on the student's hint map; returns both hint maps."""
    hint_layer: int
    teacher_channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, student_output, teacher_output, examples, train: bool):
        student_hint = student_output.stages[self.hint_layer]
        teacher_hint = teacher_output.stages[self.hint_layer]
        convolution = hint_convolution(student_hint.shape[1], teacher_hint.shape[1], student_hint.shape[-1],
                                       self.teacher_channels, self.dtype)
        regressed = BatchNorm(dtype=self.dtype, name='bn')(convolution(student_hint), train)
        return {'student_hint': nn.relu(regressed), 'teacher_hint': teacher_hint}


def check_hint_layer(hint_layer, stages, network):
    if not 0 <= hint_layer < len(stages):
        raise ValueError(f'FitNet hint_layer={hint_layer}: the {network} exposes {len(stages)} intermediate '
                         f'maps (hint_layer 0 to {len(stages) - 1}).')


def head(settings, student_shapes, teacher_shapes, dtype, examples=None):
    hint_layer = int(settings['hint_layer'])
    check_hint_layer(hint_layer, student_shapes.stages, 'student')
    check_hint_layer(hint_layer, teacher_shapes.stages, 'teacher')
    teacher_hint, student_hint = teacher_shapes.stages[hint_layer], student_shapes.stages[hint_layer]
    check_hint_sizes(student_hint.shape[1], teacher_hint.shape[1])
    return HintRegressor(hint_layer, teacher_hint.shape[-1], dtype)


def loss(outputs, labels, settings):
    return total({**classification_terms(outputs, labels, settings),
                  'hint': settings['beta'] * mse(outputs.head['student_hint'], outputs.head['teacher_hint'])})


def check(settings):
    check_temperature(settings)
    if settings['hint_layer'] != int(settings['hint_layer']):
        raise ValueError(f"FitNet's hint_layer must be a whole number, got {settings['hint_layer']}.")


OBJECTIVE = Objective(loss, evaluation_classifier='student',
                      defaults={**CLASSIFICATION_DEFAULTS, 'beta': 100.0, 'hint_layer': 2},
                      uses_teacher=True, uses_connector=False, check=check, head=head)

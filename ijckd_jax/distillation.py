"""The distillation forward pass: frozen teacher, student, connector and joint classifier.

`forward` computes every array an objective may read (a `DistillationOutputs`). The teacher
always runs in eval mode behind stop_gradient, so no gradient ever reaches its variables,
its classifier included (paper §3: the frozen teacher classifier is the ideal joint classifier).
"""
import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.connectors import Connector, check_connector_name
from ijckd_jax.models import ImageClassifier, create_model
from ijckd_jax.models.layers import average_pool_to, global_average_pool, torch_linear_init
from ijckd_jax.objectives import DistillationOutputs, Objective, get_objective, resolve_settings


class Distiller(NamedTuple):
    """The modules of one distillation setting; absent parts are None."""
    student: ImageClassifier
    teacher: Optional[ImageClassifier] = None
    connector: Optional[Connector] = None
    joint_classifier: Optional[nn.Dense] = None
    head: Optional[nn.Module] = None  # the objective's own trainable part (Objective.head)


@functools.cache
def output_shapes(model: ImageClassifier, image_size: int):
    """The model's ModelOutput on one image, as shapes (traced once per model and size: the
    connector, the objectives' heads and every initialisation ask for it)."""
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    output, _ = jax.eval_shape(model.init_with_output, jax.random.key(0), images)
    return output


def feature_shape(model: ImageClassifier, image_size: int):
    """[height, width, channels] of the map the model's classifier pools."""
    return output_shapes(model, image_size).features.shape[1:]


def build_distiller(objective_name, student_name, teacher_name=None, num_classes=100,
                    connector='1x1', connector_factor=2, image_size=32, dtype=jnp.float32, settings=None,
                    examples=None):
    """The modules the objective needs, with the connector sized to the teacher's features
    and the objective's head (if it has one) to both networks' maps; `settings` are the
    objective's overrides, which may shape the head (FitNet's hint layer), and `examples` the
    training split's size (CRD's memory bank)."""
    objective = get_objective(objective_name)
    student = create_model(student_name, num_classes, dtype)
    if not objective.uses_teacher:
        return Distiller(student)
    if teacher_name is None:
        raise ValueError(f"Objective '{objective_name}' needs a teacher; set the teacher's model.")
    teacher = create_model(teacher_name, num_classes, dtype)
    if objective.head is not None:
        head = objective.head(resolve_settings(objective_name, settings), output_shapes(student, image_size),
                              output_shapes(teacher, image_size), dtype, examples)
        return Distiller(student, teacher, head=head)
    if not objective.uses_connector:
        return Distiller(student, teacher)
    check_connector_name(connector)
    teacher_channels = feature_shape(teacher, image_size)[-1]
    joint_classifier = None
    if objective.evaluation_classifier == 'joint':
        joint_classifier = nn.Dense(num_classes, dtype=dtype, param_dtype=jnp.float32,
                                    kernel_init=torch_linear_init)
    return Distiller(student, teacher, Connector(connector, teacher_channels, connector_factor, dtype),
                     joint_classifier)


def common_size(student_features, teacher_features):
    """The smaller of the two maps' sizes: SimKD pools the larger map down to it."""
    return min(student_features.shape[1], teacher_features.shape[1])


@functools.partial(jax.jit, static_argnums=0)
def initialise_student(student: ImageClassifier, key, images):
    """The student's output on `images` and its fresh variables: one compiled program per student
    model, which every objective, row and run of that model shares (the random draws of its
    parameters are most of an initial state's compile time)."""
    return student.init_with_output(key, images)


def init_trainable(distiller: Distiller, key, images):
    """Fresh variables of everything that trains: {'student', 'connector', 'joint_classifier',
    'head'}."""
    student_key, connector_key, joint_key = jax.random.split(key, 3)
    # The student's output on `images` comes with its variables: the connector is sized by it.
    student_output, student_variables = initialise_student(distiller.student, student_key, images)
    if distiller.head is None and distiller.connector is None:
        return {'student': student_variables}
    parts = initialise_parts(distiller, (key, connector_key, joint_key), student_output, images.shape[1])
    return {'student': student_variables, **parts}


@functools.partial(jax.jit, static_argnums=(0, 3))
def initialise_parts(distiller: Distiller, keys, student_output, image_size):
    """Fresh variables of the objective's head, the connector and the joint classifier: one
    program per distiller, kept apart from the student's (initialise_student)."""
    key, connector_key, joint_key = keys
    variables = {}
    if distiller.head is not None:
        # Both networks' outputs on one image: the head's variables depend on their shapes alone.
        one_image = jax.tree.map(lambda output: output[:1], student_output)
        teacher_output = jax.tree.map(lambda shape: jnp.zeros(shape.shape, shape.dtype),
                                      output_shapes(distiller.teacher, image_size))
        variables['head'] = distiller.head.init(jax.random.fold_in(key, 3), one_image, teacher_output,
                                                None, train=False)
    if distiller.connector is None:
        return variables
    size = min(student_output.features.shape[1], feature_shape(distiller.teacher, image_size)[0])
    variables['connector'] = distiller.connector.init(
        connector_key, average_pool_to(student_output.features, size), train=False)
    if distiller.joint_classifier is not None:
        pooled = jnp.zeros((1, distiller.connector.teacher_channels), jnp.float32)
        variables['joint_classifier'] = distiller.joint_classifier.init(joint_key, pooled)
    return variables


@functools.partial(jax.jit, static_argnums=0, static_argnames='train')
def apply_tracking_statistics(module, variables, *inputs, train):
    """module(*inputs), and its variables with BatchNorm statistics updated when training."""
    if not train:
        return module.apply(variables, *inputs, train=False), variables
    output, updates = module.apply(variables, *inputs, train=True, mutable=['batch_stats'])
    return output, {**variables, **updates}


def forward(distiller: Distiller, variables, teacher_variables, images, train: bool, teacher_output=None,
            epoch=None, examples=None):
    """All arrays the objectives read, and the trainable variables with updated statistics.
    `teacher_output`, the frozen teacher's on these images where the caller computed it once
    for several students (a comparison table), is used instead of running the teacher again;
    `epoch` (counted from 1) and `examples` (an Examples) are passed on to the objectives that
    schedule by the epoch or index the training split."""
    student_output, student_variables = apply_tracking_statistics(
        distiller.student, variables['student'], images, train=train)
    updated = {**variables, 'student': student_variables}
    if distiller.teacher is None:
        return DistillationOutputs(student_logits=student_output.logits), updated

    teacher_variables = jax.lax.stop_gradient(teacher_variables)
    teacher = distiller.teacher
    if teacher_output is None:
        teacher_output = teacher.apply(teacher_variables, images, train=False)
    outputs = {
        'student_logits': student_output.logits,
        'teacher_logits': teacher_output.logits,
        'student_classifier_weight': student_variables['params'][distiller.student.classifier_name]['kernel'],
        'teacher_classifier_weight': teacher_variables['params'][teacher.classifier_name]['kernel'],
        'student_pooled': student_output.pooled, 'teacher_pooled': teacher_output.pooled,
        'student_stages': student_output.stages, 'teacher_stages': teacher_output.stages, 'epoch': epoch,
    }
    if distiller.head is not None:
        outputs['head'], updated['head'] = apply_tracking_statistics(
            distiller.head, variables['head'], student_output, teacher_output, examples, train=train)
    if distiller.connector is None:
        if student_output.features.shape[-1] == teacher_output.features.shape[-1]:
            # g_t∘Φ_s for the error bound (bound.py); pruned by jit where nothing reads it.
            outputs['teacher_classifier_logits'] = teacher.apply(
                teacher_variables, student_output.features, method='classify')
    else:
        size = common_size(student_output.features, teacher_output.features)
        teacher_features = average_pool_to(teacher_output.features, size)
        student_features, updated['connector'] = apply_tracking_statistics(
            distiller.connector, variables['connector'],
            average_pool_to(student_output.features, size), train=train)
        outputs.update(student_features=student_features, teacher_features=teacher_features,
                       teacher_classifier_logits=teacher.apply(teacher_variables, student_features,
                                                               method='classify'))
        if distiller.joint_classifier is not None:
            joint = lambda features: distiller.joint_classifier.apply(  # noqa: E731
                variables['joint_classifier'], global_average_pool(features)).astype(jnp.float32)
            outputs.update(joint_student_logits=joint(student_features),
                           joint_teacher_logits=joint(teacher_features))
    return DistillationOutputs(**outputs), updated


def evaluation_logits(outputs: DistillationOutputs, objective: Objective):
    """The logits of the classifier that predicts at test time for this objective."""
    field = {'student': 'student_logits', 'teacher': 'teacher_classifier_logits',
             'joint': 'joint_student_logits'}[objective.evaluation_classifier]
    return getattr(outputs, field)

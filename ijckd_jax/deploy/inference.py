"""The model an objective predicts with at test time, as one function of raw images.

For ce, kd, srrl and ijckd_distance it is the student alone; for ijckd, simkd and
ce_teacher_classifier the student's features through the connector (where there is one)
into the frozen teacher's classifier (paper §3: g_t ∘ Φ_s); for ijckd_joint the joint
classifier. The teacher's backbone is never part of it. `predict` takes uint8 RGB images
[batch, H, W, 3] and normalises them itself, as the training evaluation does.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ijckd_jax.deploy.fold import fold_batch_norm, folded, trace_pairs
from ijckd_jax.distillation import Distiller, feature_shape
from ijckd_jax.models.layers import average_pool_to, global_average_pool
from ijckd_jax.objectives import get_objective
from ijckd_jax.training.steps import normalize


class Deployed(NamedTuple):
    """The modules of a deployed model and what they need beyond their variables."""
    distiller: Distiller
    classifier: str        # 'student', 'teacher' or 'joint': who predicts (Objective.evaluation_classifier)
    feature_size: int      # the side the student's map is pooled to before the connector
    mean: tuple
    std: tuple


def deployed_model(distiller, objective_name, image_size, mean, std) -> Deployed:
    """The Deployed of a distiller trained with `objective_name`."""
    size = 0
    if distiller.connector is not None:  # distillation.common_size of the two maps
        size = min(feature_shape(distiller.student, image_size)[0], feature_shape(distiller.teacher, image_size)[0])
    return Deployed(distiller, get_objective(objective_name).evaluation_classifier, size, tuple(mean),
                    tuple(std))


def reads_connector(deployed: Deployed):
    """Whether the prediction goes through the connector (SRRL's student predicts without it)."""
    return deployed.distiller.connector is not None and deployed.classifier != 'student'


def deployed_variables(deployed: Deployed, trainable, teacher_variables):
    """The variables `predict` reads, from a run's trainable ones ({'student', 'connector',
    'joint_classifier'}, each {'params'[, 'batch_stats']}) and the teacher's: of the teacher
    only its classifier."""
    student = trainable['student']
    if deployed.classifier != 'student':  # predict never reads the student's own classifier
        name = deployed.distiller.student.classifier_name
        student = {**student, 'params': {key: value for key, value in student['params'].items() if key != name}}
    variables = {'student': student}
    if reads_connector(deployed):
        variables['connector'] = trainable['connector']
    if deployed.classifier == 'teacher':
        name = deployed.distiller.teacher.classifier_name
        variables['teacher_classifier'] = {'params': {name: teacher_variables['params'][name]}}
    if deployed.classifier == 'joint':
        variables['joint_classifier'] = trainable['joint_classifier']
    return variables


def predict(deployed: Deployed, variables, images, pairs=None):
    """Logits of uint8 images [batch, H, W, 3]; with `pairs` ({'student', 'connector'}: each
    part's trace_pairs), of fold_batch_norm's variables."""
    distiller = deployed.distiller

    def apply(part, module, *arguments, **keywords):
        if pairs is None:
            return module.apply(variables[part], *arguments, **keywords)
        with folded(pairs[part]):
            return module.apply(variables[part], *arguments, **keywords)

    student = apply('student', distiller.student, normalize(images, deployed.mean, deployed.std),
                    classify=deployed.classifier == 'student')
    if deployed.classifier == 'student':
        return student.logits
    features = student.features
    if distiller.connector is not None:
        features = apply('connector', distiller.connector, average_pool_to(features, deployed.feature_size),
                         train=False)
    if deployed.classifier == 'teacher':
        return distiller.teacher.apply(variables['teacher_classifier'], features, method='classify')
    return distiller.joint_classifier.apply(variables['joint_classifier'],
                                            global_average_pool(features)).astype(jnp.float32)


class Folded(NamedTuple):
    """Variables with every BatchNorm folded, and the pairs `predict` applies them with."""
    variables: Any
    pairs: dict


def fold(deployed: Deployed, variables, image_size) -> Folded:
    """fold_batch_norm of the student and the connector, traced at `image_size`."""
    distiller, pairs = deployed.distiller, {}
    student_input = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    classify = deployed.classifier == 'student'
    pairs['student'] = trace_pairs(distiller.student, variables['student'], student_input, classify=classify)
    if reads_connector(deployed):
        connector_input = jax.eval_shape(
            lambda variables, images: average_pool_to(
                distiller.student.apply(variables, images, classify=False).features, deployed.feature_size),
            variables['student'], student_input)
        pairs['connector'] = trace_pairs(distiller.connector, variables['connector'], connector_input,
                                         train=False)
    result = dict(variables)
    for part, part_pairs in pairs.items():
        result[part] = fold_batch_norm(variables[part], part_pairs)
    return Folded(result, pairs)

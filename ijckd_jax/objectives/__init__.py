"""Distillation objectives, one module each (the paper's Algorithms 1-5 and the baselines).

Every module of this package that defines `OBJECTIVE` adds the objective of its own name:
its loss, its settings with their defaults, the classifier that predicts at test time, and
whether it needs a teacher and a connector. Adding an objective is adding one module.

A loss has the signature `loss(outputs, labels, settings) -> (total, terms)`: `outputs` holds
every array the train step computed (a `DistillationOutputs`), `labels` are integer classes,
`settings` the objective's settings; `terms` holds each weighted part separately for logging.
Nothing here is jitted, stateful or does I/O; arrays a loss does not read are pruned by XLA
when the train step is jitted.
"""
import dataclasses
import difflib
import importlib
import math
import pkgutil
from typing import Callable, Dict, Mapping, NamedTuple, Optional

import jax

EVALUATION_CLASSIFIERS = ('student', 'teacher', 'joint')


class DistillationOutputs(NamedTuple):
    """Everything a loss may read; names follow the paper's Algorithms."""
    student_logits: jax.Array                  # g_s(Φ_s x): the student's own classifier
    teacher_logits: Optional[jax.Array] = None  # g_t(Φ_t x)
    student_features: Optional[jax.Array] = None  # conn(Φ_s x), at the teacher's width and size
    teacher_features: Optional[jax.Array] = None  # Φ_t x, at the common size
    teacher_classifier_logits: Optional[jax.Array] = None  # g_t(avg_pool(conn(Φ_s x)))
    joint_student_logits: Optional[jax.Array] = None  # jc(avg_pool(conn(Φ_s x)))  (Alg. 4)
    joint_teacher_logits: Optional[jax.Array] = None  # jc(avg_pool(Φ_t x))          (Alg. 4)
    student_classifier_weight: Optional[jax.Array] = None  # W_s, [features, classes]  (Alg. 5)
    teacher_classifier_weight: Optional[jax.Array] = None  # W_t, [features, classes]  (Alg. 5)
    student_pooled: Optional[jax.Array] = None  # [batch, channels]: RepDistiller's feat_s[-1]
    teacher_pooled: Optional[jax.Array] = None  # [batch, channels]: feat_t[-1]
    student_stages: tuple = ()  # feat_s[:-1]: the stem's and each stage's map (ModelOutput.stages)
    teacher_stages: tuple = ()  # feat_t[:-1]
    epoch: Optional[jax.Array] = None  # the step's epoch counted from 1, float32 (DKD's warm-up)
    head: Optional[dict] = None  # what the objective's own trainable head computed (Objective.head)


class Examples(NamedTuple):
    """What a train step knows of its batch's examples beyond their images and labels, for the
    objectives that index or sample the training split (CRD's memory bank and negatives)."""
    positions: jax.Array  # [batch] int32: each example's position in the training split
    split_labels: jax.Array  # [examples] int32: the label of every example of the split
    key: jax.Array  # the step's random key, the same on any number of devices


def accept_any(settings):
    """The default settings check: none beyond resolve_settings' own."""


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
    """One objective: what it computes and what it needs. Each is one object of OBJECTIVES,
    equal and hashed by identity (a train step's spec holds it)."""
    loss: Callable  # (outputs, labels, settings) -> (total, terms)
    evaluation_classifier: str  # which classifier predicts at test time: EVALUATION_CLASSIFIERS
    defaults: Mapping  # its settings and their defaults; a string default admits strings only
    uses_teacher: bool
    uses_connector: bool
    check: Callable = accept_any  # (settings) -> None; raises ValueError naming a bad setting
    # The objective's own trainable part (FitNet's regressor, VID's estimators, CRD's embeddings
    # and memory bank), or None: head(settings, student ModelOutput shapes, teacher ModelOutput
    # shapes, dtype, examples) -> a Flax module, `examples` the training split's size (CRD's
    # bank has a row per example, None where unknown). The module's __call__(student_output,
    # teacher_output, examples: Examples or None, train) returns the dict a loss reads as
    # outputs.head. Its params train with the student's; its 'batch_stats' collection holds
    # what it updates without gradients (BatchNorm statistics, CRD's bank); all of it is saved
    # and resumed, and none of it exported.
    head: Optional[Callable] = None
    # Whether the loss needs each example's position in the training split (Examples), which
    # only a split held on the devices gives (config.data.on_device).
    uses_examples: bool = False


def discover_objectives() -> Dict[str, Objective]:
    """{module name: its OBJECTIVE} for every module of this package that defines one."""
    found = {}
    for module in pkgutil.iter_modules(__path__):
        objective = getattr(importlib.import_module(f'{__name__}.{module.name}'), 'OBJECTIVE', None)
        if objective is not None:
            found[module.name] = objective
    return found


OBJECTIVES = discover_objectives()


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        close = difflib.get_close_matches(name, OBJECTIVES, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        raise ValueError(f"Unknown objective '{name}'.{hint} Valid objectives: {', '.join(OBJECTIVES)}.")
    return OBJECTIVES[name]


def resolve_settings(name: str, overrides=None) -> dict:
    """The objective's settings: its defaults updated by `overrides`, every value checked."""
    objective = get_objective(name)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(objective.defaults))
    if unknown:
        valid = ', '.join(objective.defaults) or 'none'
        raise ValueError(f"Objective '{name}' has no setting {unknown}; its settings: {valid}.")
    settings = {**objective.defaults, **overrides}
    for key, value in settings.items():
        if isinstance(objective.defaults[key], str):
            if not isinstance(value, str):
                raise ValueError(f"Setting {key}={value!r} of objective '{name}' must be a name.")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"Setting {key}={value!r} of objective '{name}' must be a finite "
                             'number ≥ 0.')
    objective.check(settings)
    return settings


def loss_overrides(loss_config) -> dict:
    """The settings a config's loss section sets: every field but the objective's name."""
    return {key: value for key, value in loss_config.items() if key != 'name'}

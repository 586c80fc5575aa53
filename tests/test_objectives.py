"""Objectives against the same formulas in torch.nn.functional, and where gradients go."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ijckd_jax.distillation import build_distiller, evaluation_logits, forward, init_trainable
from ijckd_jax.objectives import OBJECTIVES, DistillationOutputs, Examples, get_objective, resolve_settings

BATCH, CLASSES, CHANNELS = 8, 10, 6


def random_outputs(seed=0):
    """Random arrays of every field, scaled like real logits and features."""
    rng = np.random.default_rng(seed)
    logits = lambda: (3 * rng.standard_normal((BATCH, CLASSES))).astype(np.float32)  # noqa: E731
    features = lambda: rng.standard_normal((BATCH, 4, 4, CHANNELS)).astype(np.float32)  # noqa: E731
    weight = lambda: rng.standard_normal((CHANNELS, CLASSES)).astype(np.float32)  # noqa: E731
    return DistillationOutputs(logits(), logits(), features(), features(), logits(), logits(),
                               logits(), weight(), weight())


def torch_reference(name, outputs, labels, weights):
    """The paper's formulas (Algorithms 1-5, Hinton's KD) written with torch.nn.functional."""
    o = {field: torch.from_numpy(np.asarray(value)) for field, value in outputs._asdict().items()
         if isinstance(value, np.ndarray)}
    y = torch.from_numpy(labels).long()
    ce = F.cross_entropy
    if name == 'ce':
        return ce(o['student_logits'], y)
    if name == 'ce_teacher_classifier':
        return ce(o['teacher_classifier_logits'], y)
    if name == 'kd':
        t = weights['temperature']
        divergence = F.kl_div(F.log_softmax(o['student_logits'] / t, 1),
                              F.softmax(o['teacher_logits'] / t, 1), reduction='batchmean')
        return weights['ce_weight'] * ce(o['student_logits'], y) + weights['kd_weight'] * t * t * divergence
    if name == 'srrl':
        return (ce(o['student_logits'], y)
                + weights['alpha'] * F.mse_loss(o['teacher_classifier_logits'], o['teacher_logits'])
                + weights['beta'] * F.mse_loss(o['student_features'], o['teacher_features']))
    if name == 'simkd':
        return F.mse_loss(o['student_features'], o['teacher_features'])
    if name == 'ijckd':
        s, t = o['teacher_classifier_logits'], o['teacher_logits']
        logit_loss = {'mse': lambda: F.mse_loss(s, t),
                      'cosine': lambda: -F.cosine_similarity(s, t, dim=1).mean(),
                      'ce': lambda: ce(s, F.softmax(t, 1))}[weights['logit_loss']]()
        return (weights['alpha_ce'] * ce(s, y) + weights['alpha_lm'] * logit_loss
                + weights['beta_fm'] * F.mse_loss(o['student_features'], o['teacher_features']))
    if name == 'ijckd_joint':
        s, t, alpha = o['joint_student_logits'], o['joint_teacher_logits'], weights['alpha']
        return alpha * ce(s, y) + (1 - alpha) * ce(t, y) + weights['beta'] * F.mse_loss(s, t)
    if name == 'ijckd_distance':
        return (ce(o['student_logits'], y)
                + weights['alpha'] * F.mse_loss(o['student_logits'], o['teacher_logits'])
                + weights['beta'] * torch.norm(o['teacher_classifier_weight'].T - o['student_classifier_weight'].T))
    raise AssertionError(name)


# The paper's objectives and KD; the other methods are checked against their sources' code in
# test_objectives_logits.py, test_objectives_features.py and test_objectives_heads.py.
PAPER_OBJECTIVES = ('ce', 'ce_teacher_classifier', 'kd', 'srrl', 'simkd', 'ijckd', 'ijckd_joint', 'ijckd_distance')
SETTINGS = [(name, {}) for name in PAPER_OBJECTIVES] + [
    ('kd', {'temperature': 2.0, 'ce_weight': 1.0, 'kd_weight': 0.5}),
    ('srrl', {'alpha': 0.5, 'beta': 2.0}),
    ('ijckd', {'alpha_ce': 0.2}),
    ('ijckd', {'alpha_ce': 0.0}),  # Table 3, SR only
    ('ijckd', {'alpha_lm': 0.0}),  # Table 3, CE only
    ('ijckd', {'beta_fm': 1.0}),   # Table 3, ce+sr+fm
    ('ijckd', {'logit_loss': 'cosine', 'alpha_lm': 10.0}),  # Table 4
    ('ijckd', {'logit_loss': 'ce'}),
    ('ijckd_joint', {'alpha': 0.7, 'beta': 0.3}),
]


@pytest.mark.quick
@pytest.mark.parametrize('name, overrides', SETTINGS)
def test_objective_matches_torch_formula(name, overrides):
    outputs = random_outputs()
    labels = np.random.default_rng(1).integers(0, CLASSES, BATCH).astype(np.int32)
    weights = resolve_settings(name, overrides)
    loss, terms = get_objective(name).loss(outputs, labels, weights)
    expected = torch_reference(name, outputs, labels, weights).item()
    assert abs(float(loss) - expected) <= 1e-5 * max(1.0, abs(expected))
    assert abs(sum(float(value) for value in terms.values()) - float(loss)) < 1e-5


@pytest.mark.quick
def test_evaluation_classifier_of_each_objective():
    outputs = random_outputs()
    expected = {'ce': 'student_logits', 'kd': 'student_logits', 'srrl': 'student_logits',
                'ijckd_distance': 'student_logits', 'simkd': 'teacher_classifier_logits',
                'ijckd': 'teacher_classifier_logits',
                'ce_teacher_classifier': 'teacher_classifier_logits',
                'ijckd_joint': 'joint_student_logits',
                **{name: 'student_logits'
                   for name in ('at', 'crd', 'dkd', 'fitnet', 'ofd', 'pkt', 'rkd', 'vid', 'wsld')}}
    assert set(expected) == set(OBJECTIVES)
    for name, field in expected.items():
        assert evaluation_logits(outputs, OBJECTIVES[name]) is getattr(outputs, field), name


@pytest.mark.quick
@pytest.mark.parametrize('name, overrides, message', [
    ('ijckd2', {}, "Did you mean 'ijckd'\\? Valid objectives: at, ce, ce_teacher_classifier, crd, dkd, fitnet, "
                   'ijckd, '),
    ('ijckd', {'logit_loss': 'l1'}, 'valid logit losses: mse, cosine, ce'),
    ('ijckd', {'alpha_ce': -0.1}, 'alpha_ce=-0.1 .* must be a finite number'),
    ('ijckd', {'alpha_lm': float('nan')}, 'alpha_lm=nan .* must be a finite number'),
    ('srrl', {'alpha': 'one'}, "alpha='one' .* must be a finite number"),
    ('kd', {'temperature': 0.0}, 'temperature must be > 0'),
    ('simkd', {'alpha': 1.0}, "no setting \\['alpha'\\]; its settings: none"),
])
def test_bad_settings_name_the_valid_choices(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_settings(name, overrides)


def nonzero(tree):
    return any(bool(jnp.any(leaf != 0)) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize('name', list(OBJECTIVES))
def test_gradients_reach_what_trains_and_never_the_teacher(name):
    teacher = 'resnet8' if name == 'ijckd_distance' else 'resnet14'  # Alg. 5 needs equal widths
    distiller = build_distiller(name, 'resnet8', teacher, num_classes=CLASSES, image_size=16, examples=16)
    images = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
    labels = jnp.arange(4) % CLASSES
    # The batch as the first 4 of a split of 16 examples (CRD's memory bank indexes it).
    examples = Examples(jnp.arange(4), jnp.arange(16) % CLASSES, jax.random.key(3))
    variables = init_trainable(distiller, jax.random.key(1), images)
    teacher_variables = distiller.teacher.init(jax.random.key(2), images) if distiller.teacher else {}
    objective, weights = get_objective(name), resolve_settings(name)

    def loss(trainable_params, teacher_variables):
        merged = {part: {**value, 'params': trainable_params[part]} for part, value in variables.items()}
        outputs, _ = forward(distiller, merged, teacher_variables, images, train=True, epoch=jnp.float32(1),
                             examples=examples)
        return objective.loss(outputs, labels, weights)[0]

    trainable_params = {part: value['params'] for part, value in variables.items()}
    gradients, teacher_gradients = jax.jit(jax.grad(loss, argnums=(0, 1)))(trainable_params, teacher_variables)

    assert nonzero(gradients['student']['conv1'])
    assert nonzero(gradients['student']['fc']) == (objective.evaluation_classifier == 'student')
    assert ('connector' in gradients) == objective.uses_connector
    if objective.uses_connector:
        assert nonzero(gradients['connector'])
    assert ('joint_classifier' in gradients) == (name == 'ijckd_joint')
    if name == 'ijckd_joint':
        assert nonzero(gradients['joint_classifier'])
    assert ('head' in gradients) == (objective.head is not None)
    if objective.head is not None:
        assert nonzero(gradients['head'])
    assert not nonzero(teacher_gradients)


@pytest.mark.parametrize('name', ['srrl', 'simkd', 'ijckd'])
def test_whole_distillation_loss_matches_the_papers_pytorch_code(name):
    """Algorithms 1-3 as printed in the paper, run in PyTorch on converted copies of the same nets."""
    from ijckd_jax.convert import convert_state_dict, state_dict_to_variables
    from ijckd_jax.torch_models import create_torch_model
    from test_connectors import torch_connector

    torch.manual_seed(0)
    net_s = create_torch_model('resnet8', CLASSES).train()
    net_t = create_torch_model('resnet8x4', CLASSES).eval()
    connector = torch_connector('1x1', 64, 256).train()
    copy = lambda module: {k: v.numpy().copy() for k, v in module.state_dict().items()}  # noqa: E731
    distiller = build_distiller(name, 'resnet8', 'resnet8x4', num_classes=CLASSES)
    images = np.random.default_rng(3).standard_normal((8, 32, 32, 3)).astype(np.float32)
    labels = np.arange(8) % CLASSES
    shapes = jax.eval_shape(lambda: init_trainable(distiller, jax.random.key(0), images))
    variables = {'student': convert_state_dict(copy(net_s), 'resnet8'),
                 'connector': state_dict_to_variables(copy(connector), shapes['connector'], 'connector')}
    teacher_variables = convert_state_dict(copy(net_t), 'resnet8x4')
    outputs, _ = forward(distiller, variables, teacher_variables, images, train=True)
    loss, _ = get_objective(name).loss(outputs, labels, resolve_settings(name))

    x, y = torch.from_numpy(images.transpose(0, 3, 1, 2)), torch.from_numpy(labels).long()
    with torch.no_grad():
        feat_s = net_s.feature_map(x)
        logits_s = net_s.fc(F.adaptive_avg_pool2d(feat_s, 1).flatten(1))
        feat_s = connector['transfer'](feat_s)
        logits_t, feat_t = net_t(x), net_t.feature_map(x)
        logits_aux = net_t.fc(F.adaptive_avg_pool2d(feat_s, 1).flatten(1))
        expected = {
            'srrl': F.cross_entropy(logits_s, y) + F.mse_loss(logits_aux, logits_t) + F.mse_loss(feat_s, feat_t),
            'simkd': F.mse_loss(feat_s, feat_t),
            'ijckd': F.cross_entropy(logits_aux, y) + F.mse_loss(logits_aux, logits_t),
        }[name].item()
    assert abs(float(loss) - expected) <= 1e-5 * max(1.0, abs(expected))


@pytest.mark.quick
def test_distance_penalty_gradient_is_torchs_where_the_classifiers_are_equal():
    """Algorithm 5's ‖W_t − W_s‖_F at W_s = W_t: torch.norm's gradient there is 0; a plain
    jnp.linalg.norm gives NaN, which would poison every parameter of the step."""
    outputs = random_outputs()
    outputs = outputs._replace(student_classifier_weight=outputs.teacher_classifier_weight.copy())
    labels = np.arange(BATCH) % CLASSES
    settings = resolve_settings('ijckd_distance')

    def loss(student_weight):
        return get_objective('ijckd_distance').loss(
            outputs._replace(student_classifier_weight=student_weight), labels, settings)[0]

    gradient = jax.grad(loss)(jnp.asarray(outputs.student_classifier_weight))
    student_weight = torch.tensor(outputs.student_classifier_weight.T, requires_grad=True)
    torch.norm(torch.from_numpy(outputs.teacher_classifier_weight.T) - student_weight).backward()
    assert np.all(np.isfinite(gradient))
    np.testing.assert_array_equal(student_weight.grad.numpy(), 0)
    assert float(loss(outputs.student_classifier_weight)) == pytest.approx(
        float(torch_reference('ijckd_distance', outputs, labels, settings)), rel=1e-6)

"""The logit-distillation baselines against their sources' PyTorch code, transcribed in
tests/torch_distillers.py: DKD (mdistiller, mdistiller/distillers/DKD.py) and WSLD
(bellymonster/Weighted-Soft-Label-Distillation, knowledge_distiller.py). Plain arrays only: no
model is built; only the losses are jitted."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from configs.common import CIFAR_PAIR_SETTINGS, IMAGENET_SETTINGS, TABLE1_PAIRS
from ijckd_jax.objectives import DistillationOutputs, get_objective, resolve_settings
from ijckd_jax.objectives import dkd, wsld
from torch_distillers import dkd_forward_train as torch_dkd_forward_train
from torch_distillers import dkd_loss as torch_dkd_loss
from torch_distillers import wsld_forward as torch_wsld_forward

BATCH, CLASSES = 16, 100
# Float32 on both sides: the measured differences (loss, terms and student gradients, every
# setting below, 5-10 seeds) are at most 5e-7 of the largest magnitude, a few float32 roundings;
# 1e-5 leaves a factor 20 of margin and still catches any change of formula (WSLD without its
# detach moves the student gradient by 0.9 of its largest component).
RELATIVE = 1e-5


def random_logits(seed=0, batch=BATCH):
    """Student and teacher logits scaled like a trained CIFAR-100 net's (3·N(0, 1)), labels."""
    rng = np.random.default_rng(seed)
    student = (3 * rng.standard_normal((batch, CLASSES))).astype(np.float32)
    teacher = (3 * rng.standard_normal((batch, CLASSES))).astype(np.float32)
    labels = rng.integers(0, CLASSES, batch).astype(np.int64)
    return student, teacher, labels


def assert_close(actual, expected, what):
    """max |actual − expected| ≤ RELATIVE · max |expected|."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert np.all(np.isfinite(actual)), what
    scale = np.max(np.abs(expected))
    error = np.max(np.abs(actual - expected))
    assert error <= RELATIVE * scale, f'{what}: max difference {error:.3g}, {error / scale:.3g} relative'


# ---- Helpers: the JAX objective as a function of the logits.

def objective_loss(name, student, teacher, labels, settings, epoch):
    outputs = DistillationOutputs(student_logits=student, teacher_logits=teacher, epoch=epoch)
    return get_objective(name).loss(outputs, labels, settings)


# Jitted as the train step is, with the settings and the epoch traced: one compile per objective
# and shape rather than one per setting (eager dispatch compiles every operation anew).
jitted_loss = jax.jit(objective_loss, static_argnums=0)
jitted_gradients = jax.jit(jax.grad(lambda *args: objective_loss(*args)[0], argnums=(1, 2)), static_argnums=0)


def jax_loss(name, student, teacher, labels, settings, epoch=1.0):
    return jitted_loss(name, student, teacher, jnp.asarray(labels, jnp.int32), settings, jnp.float32(epoch))


def jax_gradients(name, student, teacher, labels, settings, epoch=1.0):
    """d total / d (student logits, teacher logits)."""
    return jitted_gradients(name, jnp.asarray(student), jnp.asarray(teacher), jnp.asarray(labels, jnp.int32),
                            settings, jnp.float32(epoch))


def torch_leaves(student, teacher, dtype=torch.float32):
    return (torch.tensor(student, dtype=dtype, requires_grad=True),
            torch.tensor(teacher, dtype=dtype, requires_grad=True))


# ---- DKD

DKD_SETTINGS = [
    {},                            # mdistiller's cfg.py defaults: beta 8, T 4, warmup 20
    {'beta': 2.0},                 # res56_res20.yaml, res110_res32.yaml
    {'beta': 6.0},                 # wrn40_2_*.yaml, vgg13_*.yaml
    IMAGENET_SETTINGS['dkd'],                  # imagenet/r34_r18/dkd.yaml: beta 0.5, T 1, warmup 1
    {'alpha': 0.5, 'ce_weight': 0.0, 'temperature': 2.0},
]


@pytest.mark.quick
@pytest.mark.parametrize('overrides', DKD_SETTINGS)
@pytest.mark.parametrize('epoch', [1, 7, 25])
def test_dkd_loss_and_student_gradient_match_mdistiller(overrides, epoch):
    student, teacher, labels = random_logits(seed=epoch)
    settings = resolve_settings('dkd', overrides)
    total, terms = jax_loss('dkd', student, teacher, labels, settings, epoch)
    student_gradient, _ = jax_gradients('dkd', student, teacher, labels, settings, epoch)

    logits_student = torch.tensor(student, requires_grad=True)
    logits_teacher = torch.from_numpy(teacher)  # forward_train runs the teacher under torch.no_grad
    losses = torch_dkd_forward_train(logits_student, logits_teacher, torch.from_numpy(labels), epoch, settings)
    sum(losses.values()).backward()

    assert_close(terms['ce'], losses['loss_ce'].item(), 'CE term')
    assert_close(terms['dkd'], losses['loss_kd'].item(), 'DKD term')
    assert_close(total, sum(losses.values()).item(), 'total')
    assert_close(student_gradient, logits_student.grad.numpy(), 'd loss / d student logits')
    assert total.dtype == jnp.float32


@pytest.mark.quick
def test_dkd_warm_up_scales_the_dkd_term_by_epoch_over_warmup_up_to_one():
    """warmup 20: epochs 1, 10, 20, 30 weigh the DKD term by 0.05, 0.5, 1, 1; CE is unscaled."""
    student, teacher, labels = random_logits()
    settings = resolve_settings('dkd', {'warmup': 20})
    full = float(jax_loss('dkd', student, teacher, labels, settings, epoch=1000.0)[1]['dkd'])
    ce = None
    for epoch, factor in ((1, 0.05), (10, 0.5), (20, 1.0), (30, 1.0)):
        _, terms = jax_loss('dkd', student, teacher, labels, settings, epoch)
        losses = torch_dkd_forward_train(torch.from_numpy(student), torch.from_numpy(teacher),
                                         torch.from_numpy(labels), epoch, settings)
        assert float(terms['dkd']) == pytest.approx(factor * full, rel=1e-6)
        assert_close(terms['dkd'], losses['loss_kd'].item(), f'DKD term at epoch {epoch}')
        ce = float(terms['ce']) if ce is None else ce
        assert float(terms['ce']) == ce
        student_gradient, _ = jax_gradients('dkd', student, teacher, labels, settings, epoch)
        logits_student = torch.tensor(student, requires_grad=True)
        sum(torch_dkd_forward_train(logits_student, torch.from_numpy(teacher), torch.from_numpy(labels),
                                    epoch, settings).values()).backward()
        assert_close(student_gradient, logits_student.grad.numpy(), f'd loss / d student at epoch {epoch}')


@pytest.mark.quick
def test_dkd_as_a_function_of_the_teacher_logits_is_mdistillers():
    """mdistiller never differentiates the teacher (torch.no_grad), nor does this project (the
    train step stops the teacher's gradient), but the loss as a function of the teacher logits is
    still mdistiller's: its values, and its derivative, which torch's autograd cannot give here
    (NaN: kl_div's xlogy has no derivative where NCKD's target-class probability is exactly 0),
    so it is taken by central differences of mdistiller's loss in float64."""
    student, teacher, labels = random_logits(seed=3, batch=8)
    settings = resolve_settings('dkd')
    y = torch.from_numpy(labels)

    logits_student, logits_teacher = torch_leaves(student, teacher)
    torch_dkd_loss(logits_student, logits_teacher, y, 1.0, 8.0, 4.0).backward()
    assert torch.isnan(logits_teacher.grad).any()  # why the reference below is numerical

    def torch_loss(teacher64):
        return torch_dkd_loss(torch.from_numpy(student).double(), teacher64, y, settings['alpha'],
                              settings['beta'], settings['temperature']).item()

    # One central difference per teacher logit, all at once (torch.func.vmap over the perturbed
    # teacher logits; torch warns that kl_div has no batching rule and loops instead).
    step, teacher64 = 1e-4, torch.from_numpy(teacher).double()
    steps = step * torch.eye(teacher.size, dtype=torch.float64).reshape(teacher.size, *teacher.shape)
    batched = torch.func.vmap(lambda logits: torch_dkd_loss(
        torch.from_numpy(student).double(), logits, y, settings['alpha'], settings['beta'], settings['temperature']))
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'There is a performance drop', UserWarning)
        numerical = ((batched(teacher64 + steps) - batched(teacher64 - steps)) / (2 * step)).reshape(teacher.shape)
    # warmup reached at epoch 20: the loss is CE + DKD, and CE does not read the teacher.
    # (Measured over 5 seeds: at most 3.3e-7 of the largest component from the differences.)
    _, teacher_gradient = jax_gradients('dkd', student, teacher, labels, settings, epoch=20.0)
    assert_close(teacher_gradient, numerical.numpy(), 'd loss / d teacher logits')

    for seed in range(3):  # the values at other teacher logits
        other_teacher = random_logits(seed=10 + seed, batch=8)[1]
        _, terms = jax_loss('dkd', student, other_teacher, labels, settings, epoch=20.0)
        assert_close(terms['dkd'], torch_loss(torch.from_numpy(other_teacher).double()), 'DKD term')


@pytest.mark.quick
def test_dkd_without_an_epoch_names_what_is_missing():
    student, teacher, labels = random_logits()
    outputs = DistillationOutputs(student_logits=student, teacher_logits=teacher)
    with pytest.raises(ValueError, match='outputs.epoch'):
        get_objective('dkd').loss(outputs, labels, resolve_settings('dkd'))


@pytest.mark.quick
def test_dkd_settings_are_mdistillers():
    assert dkd.DEFAULTS == {'ce_weight': 1.0, 'alpha': 1.0, 'beta': 8.0, 'temperature': 4.0, 'warmup': 20.0}
    assert set(CIFAR_PAIR_SETTINGS['dkd']) <= set(TABLE1_PAIRS)
    assert {pair: value['beta'] for pair, value in CIFAR_PAIR_SETTINGS['dkd'].items()} == {
        'resnet56-resnet20': 2.0, 'resnet110-resnet32': 2.0, 'wrn_40_2-wrn_16_2': 6.0,
        'wrn_40_2-wrn_40_1': 6.0, 'vgg13-vgg8': 6.0, 'vgg13-MobileNetV2': 6.0}
    for overrides in (*CIFAR_PAIR_SETTINGS['dkd'].values(), IMAGENET_SETTINGS['dkd']):
        resolve_settings('dkd', overrides)
    assert resolve_settings('dkd', IMAGENET_SETTINGS['dkd']) == {
        'ce_weight': 1.0, 'alpha': 1.0, 'beta': 0.5, 'temperature': 1.0, 'warmup': 1.0}


# ---- WSLD

WSLD_SETTINGS = [{}, IMAGENET_SETTINGS['wsld'], {'temperature': 1.0, 'alpha': 1.0}]


@pytest.mark.quick
@pytest.mark.parametrize('overrides', WSLD_SETTINGS)
@pytest.mark.parametrize('seed', [0, 1])
def test_wsld_loss_and_gradients_match_the_authors_code(overrides, seed):
    student, teacher, labels = random_logits(seed)
    settings = resolve_settings('wsld', overrides)
    total, terms = jax_loss('wsld', student, teacher, labels, settings)
    student_gradient, teacher_gradient = jax_gradients('wsld', student, teacher, labels, settings)

    fc_s, fc_t = torch_leaves(student, teacher)
    hard, soft = torch_wsld_forward(fc_s, fc_t, torch.from_numpy(labels), settings['temperature'], settings['alpha'])
    (hard + soft).backward()
    # The authors' code runs the teacher with autograd on (its parameters just are not in the
    # optimizer), so torch's teacher gradient is the source's own: through the soft labels only,
    # the focal weight's teacher loss detached. Taken in float64: the softmax Jacobian's
    # cancellation costs float32 ≈1.5e-6 of the largest component on each side (measured at
    # T = 1 over 10 seeds: JAX 1.6e-6 and torch 2.2e-6 from float64, 3.5e-6 from each other).
    fc_s64, fc_t64 = torch_leaves(student, teacher, torch.float64)
    sum(torch_wsld_forward(fc_s64, fc_t64, torch.from_numpy(labels), settings['temperature'],
                           settings['alpha'])).backward()

    assert_close(terms['ce'], hard.item(), 'CE term')
    assert_close(terms['wsld'], soft.item(), 'WSLD term')
    assert_close(total, (hard + soft).item(), 'total')
    assert_close(student_gradient, fc_s.grad.numpy(), 'd loss / d student logits')
    assert_close(teacher_gradient, fc_t64.grad.numpy(), 'd loss / d teacher logits')
    assert total.dtype == jnp.float32


@pytest.mark.quick
def test_wsld_focal_weight_is_detached_and_that_is_visible_in_the_gradient():
    """Without the source's .detach() the gradient moves far beyond the tolerance: the match
    above is a check of the stop_gradient."""
    student, teacher, labels = random_logits()
    settings = resolve_settings('wsld')
    fc_s, fc_t = torch_leaves(student, teacher)
    sum(torch_wsld_forward(fc_s, fc_t, torch.from_numpy(labels), 4.0, 2.25, detach=False)).backward()
    student_gradient, _ = jax_gradients('wsld', student, teacher, labels, settings)
    with pytest.raises(AssertionError):
        assert_close(student_gradient, fc_s.grad.numpy(), 'undetached')


@pytest.mark.quick
def test_wsld_settings_are_the_authors():
    assert wsld.DEFAULTS == {'temperature': 4.0, 'alpha': 2.25}  # CIFAR-100: the authors' issue #2
    assert resolve_settings('wsld', IMAGENET_SETTINGS['wsld']) == {'temperature': 2.0, 'alpha': 2.5}


# ---- Both

@pytest.mark.quick
@pytest.mark.parametrize('name', ['dkd', 'wsld'])
def test_objective_kind(name):
    objective = get_objective(name)
    assert objective.evaluation_classifier == 'student'
    assert objective.uses_teacher and not objective.uses_connector and objective.head is None


@pytest.mark.quick
@pytest.mark.parametrize('name', ['dkd', 'wsld'])
def test_half_precision_logits_are_computed_in_float32(name):
    student, teacher, labels = random_logits()
    settings = resolve_settings(name)
    half = jax_loss(name, jnp.asarray(student, jnp.bfloat16), jnp.asarray(teacher, jnp.bfloat16), labels, settings)
    full = jax_loss(name, np.asarray(jnp.asarray(student, jnp.bfloat16), np.float32),
                    np.asarray(jnp.asarray(teacher, jnp.bfloat16), np.float32), labels, settings)
    assert half[0].dtype == jnp.float32
    assert float(half[0]) == float(full[0])


@pytest.mark.quick
@pytest.mark.parametrize('name, overrides, message', [
    ('dkd', {'temperature': 0.0}, "DKD's temperature must be > 0, got 0.0"),
    ('dkd', {'warmup': 0.5}, "DKD's warmup must be ≥ 1 epoch .*got 0.5"),
    ('dkd', {'warmup': 0}, "DKD's warmup must be ≥ 1 epoch .*got 0"),
    ('dkd', {'beta': -8.0}, 'beta=-8.0 .* must be a finite number ≥ 0'),
    ('dkd', {'gamma': 1.0}, r"no setting \['gamma'\]; its settings: ce_weight, alpha, beta, temperature, warmup"),
    ('wsld', {'temperature': 0.0}, "WSLD's temperature must be > 0, got 0.0"),
    ('wsld', {'alpha': float('inf')}, 'alpha=inf .* must be a finite number'),
    ('wsld', {'ce_weight': 1.0}, r"no setting \['ce_weight'\]; its settings: temperature, alpha"),
])
def test_bad_settings_name_the_setting_and_what_is_valid(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_settings(name, overrides)

"""OFD against an independent PyTorch transcription of mdistiller's (mdistiller/distillers/OFD.py:
feat_loss, ConnectorConvBN._build_feature_connector, init_ofd_modules' margins, ofd_loss,
forward_train): the margins, the connectors' initialisation, the loss and its gradients, on
real networks through the converter and on maps of other sizes and counts."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F
from scipy.stats import norm

from configs.common import IMAGENET_SETTINGS
from ijckd_jax.convert import convert_state_dict, state_dict_to_variables
from ijckd_jax.distillation import build_distiller, init_trainable
from ijckd_jax.models.layers import ModelOutput
from ijckd_jax.objectives import DistillationOutputs, get_objective, resolve_settings
from ijckd_jax.objectives import ofd
from torch_distillers import ConnectorConvBN, margins_of, torch_ofd_loss

BATCH, CLASSES = 8, 10
# Our float32 against the transcription in float64 (on real networks) or float32, whose margins
# mdistiller computes in float64: measured ≤ 1.6e-6 relative to the largest magnitude (the
# loss, each term, the margins, the gradients of logits, maps and every connector parameter;
# 1.3e-6 with the suite's XLA settings, 1.6e-6 with XLA's optimisations on; AMD EPYC, 2 cores).
# 1e-5 is the bound the project sets for every loss against its PyTorch source.
TOLERANCE = 1e-5


def close(actual, expected, tolerance=TOLERANCE):
    """max |actual − expected| within `tolerance` × the largest |expected|."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) <= tolerance * np.max(np.abs(expected))


# --- helpers --------------------------------------------------------------------------------

def nchw(array):
    return torch.from_numpy(np.asarray(array).transpose(0, 3, 1, 2).copy())


def state_dict_of(module):
    return {key: value.detach().numpy().copy() for key, value in module.state_dict().items()}


def gradients_as_variables(module, shapes, description):
    """The module's parameter gradients laid out as Flax variables (through the converter, so
    that every parameter is compared): its state dict with each parameter replaced by its grad."""
    gradients = {name: parameter.grad for name, parameter in module.named_parameters()}
    state = {key: (gradients[key] if key in gradients else value).detach().numpy().copy()
             for key, value in module.state_dict().items()}
    return state_dict_to_variables(state, shapes, description)['params']


def randomize_teacher_norms(model, generator):
    """Trained-looking BatchNorms, and on the ones OFD reads some negative γ and some channels
    with β > 3.1·|γ|, where init_ofd_modules takes −3|γ|."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, tnn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.0, generator=generator)
                module.bias.uniform_(-0.5, 0.5, generator=generator)
        for bn in model.bn_before_relu():
            bn.weight[::5] *= -1
            bn.bias[1::7] = 3.5 * bn.weight[1::7].abs()


# --- the margins ----------------------------------------------------------------------------

# (β, γ): around the threshold Φ(−β/|γ|) = 0.001 (β/|γ| ≈ 3.09) on both sides, negative γ, large
# negative β (Φ → 1), β = 0.
MARGIN_CASES = [(0.0, 1.0), (0.3, -0.5), (-1.0, 0.2), (3.0, 1.0), (1.5, 0.5), (3.05, 1.0), (3.2, 1.0),
                (7.0, -2.0), (-0.4, 0.9), (0.25, 0.1)]


@pytest.mark.quick
def test_margins_are_init_ofd_modules_margins_including_the_minus_three_gamma_branch():
    bias, scale = (np.array(column, np.float32) for column in zip(*MARGIN_CASES))
    ours = np.asarray(ofd.margins_from_batch_norm(jnp.asarray(scale), jnp.asarray(bias)))
    bn = tnn.BatchNorm2d(len(MARGIN_CASES))
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(scale))
        bn.bias.copy_(torch.from_numpy(bias))
    expected = margins_of([bn])[0].flatten().numpy()
    # Each channel within 1e-5 of its own size (measured ≤ 8.1e-7, at β/|γ| = 3, where the margin
    # is a difference of nearly equal terms; float32 against float64 rounded to float32).
    np.testing.assert_allclose(ours, expected, rtol=TOLERANCE, atol=0)
    # The −3|γ| branch is taken where Φ(−β/|γ|) ≤ 0.001, and only there.
    below = np.array([norm.cdf(-b / abs(s)) <= 0.001 for b, s in MARGIN_CASES])
    assert below.tolist() == [False] * 6 + [True, True, False, False]
    np.testing.assert_array_equal(ours[below], -3 * np.abs(scale[below]))
    # Every margin is the mean of N(β, γ²) below 0: negative, below β where β < 0.
    assert np.all(ours < 0) and np.all(ours[bias < 0] < bias[bias < 0])


@pytest.mark.quick
def test_a_zero_gamma_gives_the_limit_not_a_division_by_zero():
    """mdistiller divides by |γ| = 0 (ZeroDivisionError); here the margin is the limit min(β, 0)."""
    margins = ofd.margins_from_batch_norm(jnp.zeros(3), jnp.array([-0.5, 0.0, 0.7]))
    np.testing.assert_array_equal(margins, [-0.5, 0.0, 0.0])


# --- the connectors -------------------------------------------------------------------------

@pytest.mark.quick
def test_connectors_are_initialised_as_mdistillers():
    """Conv weight normal(0, √(2/(k²·C_t))) (mean and standard deviation within 3 standard errors
    over 256·256·9 draws), BatchNorm weight 1 and bias 0."""
    student = ModelOutput(None, None, None, (), tuple(jnp.zeros((1, 4, 4, 256)) for _ in range(2)))
    teacher = student._replace(preact_norms=((jnp.ones(256), jnp.zeros(256)),))
    head = ofd.head(resolve_settings('ofd', {'kernel_size': 3}), student, teacher, jnp.float32)
    params = head.init(jax.random.key(0), student, teacher, None, train=False)['params']
    kernel = np.asarray(params['connectors.0.0']['kernel'])
    assert kernel.shape == (3, 3, 256, 256)
    std = math.sqrt(2.0 / (9 * 256))
    assert abs(kernel.mean()) < 3 * std / math.sqrt(kernel.size)
    assert abs(kernel.std() / std - 1) < 3 / math.sqrt(2 * kernel.size)
    np.testing.assert_array_equal(params['connectors.0.1']['scale'], 1)
    np.testing.assert_array_equal(params['connectors.0.1']['bias'], 0)


# --- the loss -------------------------------------------------------------------------------

def model_output(rng, maps, norms=()):
    stages = tuple(rng.standard_normal((BATCH, size, size, channels)).astype(np.float32) for size, channels in maps)
    return ModelOutput(None, None, None, (), stages, tuple(norms))


@pytest.mark.quick
@pytest.mark.parametrize('kernel_size', [1, 3])
def test_ofd_loss_matches_mdistillers_on_maps_of_other_sizes(kernel_size):
    """A student with more maps than the teacher (the last ones pair up), teacher maps pooled
    with overlapping windows (7×7 to 3×3) and up-sampled (2×2 to 4×4), the 1×1 and a 3×3
    connector: the loss and its gradients (student maps, every connector parameter)."""
    rng = np.random.default_rng(1)
    student = model_output(rng, [(16, 4), (16, 8), (3, 16), (4, 32)])
    teacher_maps = [(16, 6), (7, 12), (2, 24)]
    widths = [width for _, width in teacher_maps[1:]]
    bns = [tnn.BatchNorm2d(width) for width in widths]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(-1.0, 1.0)
            bn.bias.uniform_(-1.0, 4.0)  # some channels beyond 3.09·|γ|
    norms = [(bn.weight.detach().numpy().copy(), bn.bias.detach().numpy().copy()) for bn in bns]
    teacher = model_output(rng, teacher_maps, norms)
    # Teacher maps around the margins, so that every branch of feat_loss is taken.
    teacher = teacher._replace(preact_stages=tuple(stage - 0.3 for stage in teacher.preact_stages))
    settings = resolve_settings('ofd', {'kernel_size': kernel_size, 'feat_weight': 1.0})
    head = ofd.head(settings, student, teacher, jnp.float32)
    torch.manual_seed(0)
    connectors = ConnectorConvBN([16, 32], widths, kernel_size).train()
    shapes = jax.eval_shape(lambda: head.init(jax.random.key(0), student, teacher, None, train=False))
    variables = state_dict_to_variables(state_dict_of(connectors), shapes, 'the OFD connectors')
    labels = np.arange(BATCH) % CLASSES
    logits = (3 * rng.standard_normal((BATCH, CLASSES))).astype(np.float32)

    def loss(params, student_maps):
        head_output, _ = head.apply({**variables, 'params': params}, student._replace(preact_stages=student_maps),
                                    teacher, None, train=True, mutable=['batch_stats'])
        return ofd.loss(DistillationOutputs(student_logits=logits, head=head_output), labels, settings)

    (value, terms), (parameter_gradients, map_gradients) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        variables['params'], student.preact_stages)

    maps = [nchw(stage).requires_grad_() for stage in student.preact_stages]
    distill = torch_ofd_loss(connectors, margins_of(bns), maps[1:],
                             [nchw(stage) for stage in teacher.preact_stages[1:]])
    ce = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels).long())
    (ce + distill).backward()
    close(terms['ofd'], distill.item())
    close(value, ce.item() + distill.item())
    for ours, theirs in zip(map_gradients[2:], maps[2:]):
        close(ours, theirs.grad.numpy().transpose(0, 2, 3, 1))
    assert not np.any(np.asarray(map_gradients[0])) and not np.any(np.asarray(map_gradients[1]))
    expected = gradients_as_variables(connectors, variables, 'the OFD connectors')
    jax.tree.map(close, parameter_gradients, expected)


def test_ofd_on_real_networks_matches_mdistillers_forward_train():
    """resnet8x4 → resnet8 at 32×32, a batch of 8, converted from PyTorch: one jitted forward of
    both networks (the student in training mode, the teacher in eval mode) and the loss's
    gradient with respect to the student's logits and preact maps and every connector parameter,
    against mdistiller's forward_train (lines 129-140) on the same maps, in float64.

    The same maps on both sides: the two frameworks' float32 maps differ by rounding (≤ 1e-4,
    test_models.py), and feat_loss is discontinuous where a teacher activation crosses 0 (the
    (s − t)² of t > 0 against nothing), which ~10⁶ activations would hit by chance."""
    from ijckd_jax.torch_models import create_torch_model

    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net_s = create_torch_model('resnet8', CLASSES).train()
    net_t = create_torch_model('resnet8x4', CLASSES).eval()
    randomize_teacher_norms(net_t, generator)
    settings = resolve_settings('ofd')
    # OFD.__init__: connectors from get_stage_channels()[1:], margins from get_bn_before_relu().
    connectors = ConnectorConvBN([16, 32, 64], [64, 128, 256], settings['kernel_size']).train()
    margins = margins_of(net_t.bn_before_relu())

    distiller = build_distiller('ofd', 'resnet8', 'resnet8x4', num_classes=CLASSES)
    images = np.random.default_rng(3).standard_normal((BATCH, 32, 32, 3)).astype(np.float32)
    labels = np.arange(BATCH) % CLASSES
    shapes = jax.eval_shape(lambda: init_trainable(distiller, jax.random.key(0), images))
    variables = {'student': convert_state_dict(state_dict_of(net_s), 'resnet8'),
                 'head': state_dict_to_variables(state_dict_of(connectors), shapes['head'], 'the OFD connectors')}
    teacher_variables = convert_state_dict(state_dict_of(net_t), 'resnet8x4')

    @jax.jit  # everything an argument: no constant for XLA to fold while compiling
    def loss_and_gradients(variables, teacher_variables, images, labels):
        # What distillation.forward computes for OFD's loss, with the student's outputs as inputs.
        student, _ = distiller.student.apply(variables['student'], images, train=True, mutable=['batch_stats'])
        teacher = distiller.teacher.apply(teacher_variables, images, train=False)

        def loss(head_params, logits, maps):
            head_output, _ = distiller.head.apply({**variables['head'], 'params': head_params},
                                                  student._replace(preact_stages=maps), teacher, None, train=True,
                                                  mutable=['batch_stats'])
            outputs = DistillationOutputs(student_logits=logits, head=head_output)
            total, terms = get_objective('ofd').loss(outputs, labels, settings)
            return total, (terms, head_output['margins'])

        value_and_gradients = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(
            variables['head']['params'], student.logits, student.preact_stages)
        return value_and_gradients, student, teacher

    ((value, (terms, our_margins)), (head_gradients, logit_gradients, map_gradients)), student, teacher = \
        loss_and_gradients(variables, teacher_variables, images, labels)

    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():  # the converted networks agree (test_models.py)
        for ours, theirs in ((student.preact_stages, net_s.preact_feature_list(x)),
                             (teacher.preact_stages, net_t.preact_feature_list(x))):
            for our_map, their_map in zip(ours, theirs):
                np.testing.assert_allclose(our_map, their_map.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-4)

    # forward_train, lines 129-140, in float64 on our maps and logits.
    double = lambda array: nchw(array).double().requires_grad_()  # noqa: E731
    feature_student = [double(stage) for stage in student.preact_stages]
    logits_student = torch.from_numpy(np.asarray(student.logits, np.float64)).requires_grad_()
    feature_teacher = [nchw(stage).double() for stage in teacher.preact_stages]
    connectors.double()
    loss_ce = settings['ce_weight'] * F.cross_entropy(logits_student, torch.from_numpy(labels).long())
    loss_feat = settings['feat_weight'] * torch_ofd_loss(connectors, margins, feature_student[1:], feature_teacher[1:])
    (loss_ce + loss_feat).backward()

    close(terms['ce'], loss_ce.item())
    close(terms['ofd'], loss_feat.item())
    close(value, loss_ce.item() + loss_feat.item())
    for ours, theirs in zip(our_margins, margins):
        close(ours, theirs.flatten().numpy())
    assert any(np.any(margin.flatten().numpy() == -3 * np.abs(bn.weight.detach().numpy()))
               for margin, bn in zip(margins, net_t.bn_before_relu()))  # the −3|γ| branch is exercised
    close(logit_gradients, logits_student.grad.numpy())
    for ours, theirs in zip(map_gradients[1:], feature_student[1:]):
        close(ours, theirs.grad.numpy().transpose(0, 2, 3, 1))
    assert not np.any(np.asarray(map_gradients[0]))  # the stem's map is not distilled
    jax.tree.map(close, head_gradients, gradients_as_variables(connectors, shapes['head'], 'the OFD connectors'))


# --- settings and the networks OFD cannot pair ------------------------------------------------

@pytest.mark.quick
def test_defaults_are_mdistillers_cifar_and_imagenet_settings():
    assert resolve_settings('ofd') == {'ce_weight': 1.0, 'feat_weight': 0.001, 'kernel_size': 1}  # cfg.py
    assert resolve_settings('ofd', IMAGENET_SETTINGS['ofd']) == {'ce_weight': 1.0, 'feat_weight': 0.0001,
                                                     'kernel_size': 1}  # imagenet/r50_mv1/ofd.yaml


@pytest.mark.quick
@pytest.mark.parametrize('overrides, message', [
    ({'kernel_size': 0}, "kernel_size .* must be a whole number ≥ 1, got 0"),
    ({'kernel_size': 1.5}, "kernel_size .* must be a whole number ≥ 1, got 1.5"),
    ({'kernel_size': 'one'}, "kernel_size='one' of objective 'ofd' must be a finite number"),
    ({'feat_weight': -1.0}, "feat_weight=-1.0 of objective 'ofd' must be a finite number ≥ 0"),
    ({'ce_weight': float('inf')}, "ce_weight=inf of objective 'ofd' must be a finite number ≥ 0"),
    ({'beta': 1.0}, r"no setting \['beta'\]; its settings: ce_weight, feat_weight, kernel_size"),
])
def test_bad_settings_name_the_setting(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_settings('ofd', overrides)


@pytest.mark.quick
@pytest.mark.parametrize('teacher', ['ShuffleV1', 'ShuffleV2'])
def test_a_shufflenet_teacher_is_refused(teacher):
    """mdistiller's ShuffleNets raise NotImplementedError in get_bn_before_relu: no margins."""
    with pytest.raises(ValueError, match="teacher's BatchNorms before ReLU, and this teacher lists none"):
        build_distiller('ofd', 'resnet8', teacher)


@pytest.mark.quick
def test_the_last_maps_pair_up_where_the_networks_have_more():
    """ResNet50 → vgg8 (4 maps each) distils all four; resnet32x4 → ShuffleV1 (3 each) its three,
    each teacher map pooled to the student's size; the ImageNet ResNets list BatchNorms for
    layer2-4 only, so resnet34 → resnet18 distils their last three maps, as mdistiller's three
    connectors do."""
    def pairs(teacher, student, size=32):
        head = build_distiller('ofd', student, teacher, image_size=size,
                               num_classes=1000 if size == 224 else 100).head
        return head.teacher_channels

    assert pairs('ResNet50', 'vgg8') == (256, 512, 1024, 2048)
    assert pairs('resnet32x4', 'ShuffleV1') == (64, 128, 256)
    assert pairs('resnet34', 'resnet18', 224) == (128, 256, 512)
    assert pairs('resnet50', 'MobileNetV1', 224) == (512, 1024, 2048)

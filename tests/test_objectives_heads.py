"""The objectives with their own trainable parts, FitNet's ConvReg, VID's estimators and CRD's
embeddings and memory bank, against PyTorch transcriptions of RepDistiller's modules
(models/util.py ConvReg, distiller_zoo/FitNet.py, distiller_zoo/VID.py, crd/criterion.py,
crd/memory.py; in tests/torch_distillers.py) with the same weights: the loss and its
gradients."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ijckd_jax.models.layers import ModelOutput
from ijckd_jax.objectives import DistillationOutputs, get_objective, resolve_settings
from ijckd_jax.objectives import fitnet, vid
from torch_distillers import ContrastLoss, ContrastMemory, ConvReg, DistillKL, Embed, VIDLoss

BATCH, CLASSES = 8, 10
# Float32 arithmetic in two libraries that sum in different orders: measured ≤ 8.7e-7 relative
# to the largest magnitude on these sizes (losses and gradients, AMD EPYC); 1e-5 is the bound
# the project sets for every loss against its PyTorch source.
TOLERANCE = 1e-5


def nchw(array):
    return torch.from_numpy(np.asarray(array).transpose(0, 3, 1, 2).copy())


def stages(rng, sizes_and_channels):
    return tuple(rng.standard_normal((BATCH, size, size, channels)).astype(np.float32)
                 for size, channels in sizes_and_channels)


def model_output(stage_maps):
    return ModelOutput(None, None, None, stage_maps)


def close(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert np.max(np.abs(actual - expected)) <= TOLERANCE * max(1.0, np.max(np.abs(expected)))


def outputs_with(head_output, rng):
    logits = lambda: (3 * rng.standard_normal((BATCH, CLASSES))).astype(np.float32)  # noqa: E731
    return DistillationOutputs(student_logits=logits(), teacher_logits=logits(), head=head_output)


def torch_classification(outputs, labels, settings):
    """RepDistiller helper/loops.py train_distill's γ·CE + α·KD (DistillKL: T² · KL, batch mean)."""
    s, t, y = torch.from_numpy(outputs.student_logits), torch.from_numpy(outputs.teacher_logits), torch.tensor(labels)
    divergence = DistillKL(settings['temperature'])(s, t)
    return settings['ce_weight'] * F.cross_entropy(s, y) + settings['kd_weight'] * divergence


# (student hint map, teacher hint map): the three kinds of ConvReg. The student's 16×16 map
# against an 8×8 teacher's (stride 2), an 8×8 one against 16×16 (transposed), 8×8 vs 6×6 (valid).
HINT_CASES = {'stride_2': ((16, 16), (8, 32)), 'transposed': ((8, 16), (16, 32)), 'valid': ((8, 16), (6, 32))}


@pytest.mark.quick
@pytest.mark.parametrize('case', list(HINT_CASES))
def test_fitnet_matches_repdistillers_convreg_and_hint_loss(case):
    (student_size, student_channels), (teacher_size, teacher_channels) = HINT_CASES[case]
    rng = np.random.default_rng(0)
    student = model_output(stages(rng, [(32, 16), (32, 16), (student_size, student_channels)]))
    teacher = model_output(stages(rng, [(32, 16), (32, 16), (teacher_size, teacher_channels)]))
    settings = resolve_settings('fitnet', {'kd_weight': 0.5})
    head = fitnet.head(settings, student, teacher, jnp.float32)
    variables = head.init(jax.random.key(0), student, teacher, None, train=False)
    labels = np.arange(BATCH) % CLASSES
    outputs = outputs_with(None, rng)

    def loss(params, student_hint):
        stage_maps = student.stages[:2] + (student_hint,)
        head_output, _ = head.apply({**variables, 'params': params}, model_output(stage_maps), teacher, None,
                                    train=True, mutable=['batch_stats'])
        return get_objective('fitnet').loss(outputs._replace(head=head_output), labels, settings)[0]

    value, (parameter_gradients, hint_gradient) = jax.value_and_grad(loss, argnums=(0, 1))(
        variables['params'], student.stages[2])

    regressor = ConvReg(nchw(student.stages[2]).shape, nchw(teacher.stages[2]).shape).train()
    kernel = np.asarray(variables['params']['conv']['kernel'])
    # Flax's [H, W, in, out] is torch's Conv2d [out, in, H, W]; with transpose_kernel Flax's
    # [H, W, out, in] is torch's ConvTranspose2d [in, out, H, W]: the same transposition.
    with torch.no_grad():
        regressor.conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
        regressor.conv.bias.copy_(torch.from_numpy(np.array(variables['params']['conv']['bias'])))
    hint = nchw(student.stages[2]).requires_grad_()
    expected = torch_classification(outputs, labels, settings) + settings['beta'] * F.mse_loss(
        regressor(hint), nchw(teacher.stages[2]))
    expected.backward()
    close(value, expected.item())
    close(hint_gradient, hint.grad.numpy().transpose(0, 2, 3, 1))
    weight_gradient = np.asarray(parameter_gradients['conv']['kernel'])
    close(weight_gradient.transpose(3, 2, 0, 1), regressor.conv.weight.grad.numpy())
    close(parameter_gradients['bn']['scale'], regressor.bn.weight.grad.numpy())


@pytest.mark.quick
def test_fitnet_initialises_convreg_as_torch_does():
    """Kernel and bias uniform in ±1/√fan_in, torch.nn.Conv2d's default: the bounds are met and
    nearly reached."""
    rng = np.random.default_rng(0)
    student = model_output(stages(rng, [(8, 4), (8, 4), (16, 16)]))
    teacher = model_output(stages(rng, [(8, 4), (8, 4), (8, 32)]))
    head = fitnet.head(resolve_settings('fitnet'), student, teacher, jnp.float32)
    params = head.init(jax.random.key(0), student, teacher, None, train=False)['params']['conv']
    bound = 1 / math.sqrt(16 * 9)
    for value in (params['kernel'], params['bias']):
        assert 0.8 * bound < float(jnp.max(jnp.abs(value))) <= bound


@pytest.mark.quick
def test_vid_matches_repdistillers_vidloss_on_every_stage():
    rng = np.random.default_rng(1)
    # feat[1:-1] of a student and a teacher: equal sizes, a student map twice the teacher's, and
    # a teacher map 8×8 pooled to the student's 6×6 (PyTorch's overlapping windows).
    student = model_output(stages(rng, [(32, 8), (32, 8), (16, 16), (6, 32)]))
    teacher = model_output(stages(rng, [(32, 16), (32, 16), (8, 32), (8, 64)]))
    settings = resolve_settings('vid')
    head = vid.head(settings, student, teacher, jnp.float32)
    variables = head.init(jax.random.key(0), student, teacher, None, train=False)
    labels = np.arange(BATCH) % CLASSES
    outputs = outputs_with(None, rng)

    def loss(params, student_maps):
        head_output = head.apply({'params': params}, model_output(student_maps), teacher, None, train=True)
        return get_objective('vid').loss(outputs._replace(head=head_output), labels, settings)[0]

    value, (parameter_gradients, map_gradients) = jax.value_and_grad(loss, argnums=(0, 1))(
        variables['params'], student.stages)

    maps = [nchw(stage).requires_grad_() for stage in student.stages]
    losses = []
    for index, (student_map, teacher_map) in enumerate(zip(maps[1:], teacher.stages[1:])):
        estimator = VIDLoss(student_map.shape[1], teacher_map.shape[-1], teacher_map.shape[-1])
        params = variables['params'][str(index)]
        with torch.no_grad():
            for position in (0, 2, 4):
                kernel = np.asarray(params[f'regressor.{position}']['kernel'])
                estimator.regressor[position].weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            assert np.allclose(estimator.log_scale.numpy(), np.asarray(params['log_scale']))
        losses.append(estimator(student_map, nchw(teacher_map)))
    expected = torch_classification(outputs, labels, settings) + settings['beta'] * sum(losses)
    expected.backward()
    close(value, expected.item())
    for gradient, student_map in zip(map_gradients[1:], maps[1:]):
        close(gradient, student_map.grad.numpy().transpose(0, 2, 3, 1))
    assert not np.any(np.asarray(map_gradients[0]))  # feat[0] is not distilled


@pytest.mark.quick
@pytest.mark.parametrize('name, student_maps, teacher_maps, message', [
    ('fitnet', [(8, 4), (8, 4), (4, 16)], [(8, 4), (8, 4), (16, 32)], 'cannot regress a 4×4 student map onto a 16×16'),
    ('vid', [(8, 4), (8, 4)], [(8, 4), (8, 4), (4, 32)], 'the student exposes 2 and the teacher 3'),
])
def test_maps_a_head_cannot_pair_are_refused_when_it_is_built(name, student_maps, teacher_maps, message):
    rng = np.random.default_rng(0)
    student, teacher = model_output(stages(rng, student_maps)), model_output(stages(rng, teacher_maps))
    with pytest.raises(ValueError, match=message):
        get_objective(name).head(resolve_settings(name), student, teacher, jnp.float32)


@pytest.mark.quick
@pytest.mark.parametrize('name, overrides, message', [
    ('fitnet', {'hint_layer': 1.5}, 'hint_layer must be a whole number'),
    ('fitnet', {'hint_layer': 'two'}, "hint_layer='two' .* must be a finite number"),
    ('fitnet', {'temperature': 0.0}, 'temperature must be > 0'),
    ('vid', {'init_pred_var': 1e-6}, 'init_pred_var must exceed epsilon'),
    ('vid', {'beta': -1.0}, 'beta=-1.0 .* must be a finite number ≥ 0'),
])
def test_bad_settings_of_the_head_objectives(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_settings(name, overrides)


def test_fitnet_hint_layer_beyond_the_models_maps_is_refused():
    rng = np.random.default_rng(0)
    maps = model_output(stages(rng, [(8, 4), (8, 4), (4, 16)]))
    with pytest.raises(ValueError, match='hint_layer=5: the student exposes 3 intermediate maps'):
        fitnet.head(resolve_settings('fitnet', {'hint_layer': 5}), maps, maps, jnp.float32)


def crd_setup(examples=40, classes=5, negatives=12, dimension=16):
    """A CRD head over a split of `examples` examples, its initial variables, and the split's labels."""
    settings = resolve_settings('crd', {'negatives': negatives, 'feature_dimension': dimension})
    shapes = lambda width: ModelOutput(None, None, jax.ShapeDtypeStruct((1, width), jnp.float32), ())  # noqa: E731
    head = get_objective('crd').head(settings, shapes(32), shapes(48), jnp.float32, examples)
    rng = np.random.default_rng(2)
    pooled = lambda width: rng.standard_normal((BATCH, width)).astype(np.float32)  # noqa: E731
    variables = head.init(jax.random.key(0), ModelOutput(None, None, pooled(32), ()),
                          ModelOutput(None, None, pooled(48), ()), None, train=False)
    split_labels = jnp.asarray(np.arange(examples) % classes, jnp.int32)
    return settings, head, variables, split_labels, pooled


@pytest.mark.quick
def test_crd_matches_repdistillers_crdloss_and_memory_over_several_steps():
    """Three steps: the loss, its gradients (student features, both embeddings) and the banks and
    Z after each step, against RepDistiller's modules given the same weights, banks and indices."""
    from ijckd_jax.objectives import Examples

    settings, head, variables, split_labels, pooled = crd_setup()
    rng = np.random.default_rng(3)
    labels = np.arange(BATCH) % CLASSES
    embed = {name: Embed(width, 16) for name, width in (('embed_s', 32), ('embed_t', 48))}
    linear = {name: module.linear for name, module in embed.items()}
    with torch.no_grad():
        for name, module in linear.items():
            module.weight.copy_(torch.from_numpy(np.asarray(variables['params'][name]['linear']['kernel']).T.copy()))
            module.bias.copy_(torch.from_numpy(np.array(variables['params'][name]['linear']['bias'])))
    stats = variables['batch_stats']
    memory = ContrastMemory(16, 40, K=12, T=0.07, momentum=0.5)
    with torch.no_grad():
        for name in ('memory_v1', 'memory_v2'):
            getattr(memory, name).copy_(torch.from_numpy(np.array(stats[name])))
    outputs = outputs_with(None, rng)
    for step in range(3):
        positions = jnp.asarray(rng.permutation(40)[:BATCH], jnp.int32)
        examples = Examples(positions, split_labels, jax.random.key(step))
        student, teacher = pooled(32), pooled(48)

        def loss(params, student):
            head_output, updated = head.apply(
                {'params': params, 'batch_stats': stats}, ModelOutput(None, None, student, ()),
                ModelOutput(None, None, teacher, ()), examples, train=True, mutable=['batch_stats'])
            return get_objective('crd').loss(outputs._replace(head=head_output), labels, settings)[0], (
                updated['batch_stats'], head_output['contrast'])

        (value, (stats, contrast)), (parameter_gradients, student_gradient) = jax.value_and_grad(
            loss, argnums=(0, 1), has_aux=True)(variables['params'], student)

        f_s = torch.from_numpy(student).requires_grad_()
        out_s, out_t = memory(embed['embed_s'](f_s), embed['embed_t'](torch.from_numpy(teacher)),
                              torch.from_numpy(np.array(positions)).long(), torch.from_numpy(np.array(contrast)).long())
        contrastive = ContrastLoss(40)(out_s) + ContrastLoss(40)(out_t)
        expected = torch_classification(outputs, labels, settings) + settings['beta'] * contrastive
        for module in linear.values():
            module.zero_grad()
        expected.sum().backward()
        close(value, expected.item())
        close(student_gradient, f_s.grad.numpy())
        for name, module in linear.items():
            close(parameter_gradients[name]['linear']['kernel'].T, module.weight.grad.numpy())
        close(stats['memory_v1'], memory.memory_v1.numpy())
        close(stats['memory_v2'], memory.memory_v2.numpy())
        close([stats['z_v1'], stats['z_v2']], [memory.Z_v1, memory.Z_v2])
        assert np.all(np.asarray(contrast[:, 0]) == np.asarray(positions))


@pytest.mark.quick
def test_crd_draws_negatives_of_other_classes_uniformly():
    """CIFAR100InstanceSample's draw: examples of other classes only, distinct where there are
    enough of them, each equally often (a chi-square over 2,000 draws of 12 from 32 negatives,
    31 degrees of freedom, below 61.1: p = 0.001); with replacement where there are too few."""
    from ijckd_jax.objectives.crd import draw_negatives

    split_labels = jnp.asarray(np.arange(40) % 5, jnp.int32)
    labels = jnp.zeros(2000, jnp.int32)
    drawn = np.asarray(draw_negatives(jax.random.key(0), labels, split_labels, 12))
    assert np.all(np.asarray(split_labels)[drawn] != 0)
    assert all(len(set(row)) == 12 for row in drawn)
    counts = np.bincount(drawn.ravel(), minlength=40)[np.asarray(split_labels) != 0]
    expected = drawn.size / 32
    assert np.sum((counts - expected) ** 2 / expected) < 61.1
    many = np.asarray(draw_negatives(jax.random.key(1), labels[:50], split_labels, 50))
    assert np.all(np.asarray(split_labels)[many] != 0) and many.shape == (50, 50)


def test_crds_bank_updated_on_four_devices_is_the_bank_updated_on_one():
    """The step's batch sharded over four devices, the bank replicated: every bank row, Z and
    score as on one device (float32; measured equal to the last bit here, allowed 1e-6 relative
    for processors that sum the batch's mean in another order)."""
    from conftest import CPU_DEVICES
    from ijckd_jax.objectives import Examples
    from ijckd_jax.training.mesh import Mesh

    _, head, variables, split_labels, pooled = crd_setup()
    student, teacher = pooled(32), pooled(48)
    positions = jnp.asarray(np.random.default_rng(4).permutation(40)[:BATCH], jnp.int32)

    def step(student, teacher, positions):
        examples = Examples(positions, split_labels, jax.random.key(7))
        return head.apply(variables, ModelOutput(None, None, student, ()), ModelOutput(None, None, teacher, ()),
                          examples, train=True, mutable=['batch_stats'])

    results = []
    for devices in (CPU_DEVICES[:1], CPU_DEVICES[:4]):
        mesh = Mesh(devices)
        results.append(jax.device_get(jax.jit(step)(*mesh.shard(student, teacher, np.asarray(positions)))))
    jax.tree.map(lambda one, four: np.testing.assert_allclose(four, one, rtol=1e-6, atol=1e-7), *results)
    assert not np.allclose(results[0][1]['batch_stats']['memory_v1'], variables['batch_stats']['memory_v1'])

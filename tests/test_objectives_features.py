"""AT, RKD and PKT against PyTorch transcriptions of RepDistiller's loss classes
(github.com/HobbitLong/RepDistiller: distiller_zoo/AT.py, RKD.py, PKT.py, KD.py, transcribed in
tests/torch_distillers.py), combined as helper/loops.py train_distill does:
γ·CE + α·KD + β·loss_kd, in NCHW as there: the loss and its gradient with respect to every
student array, on plain random arrays."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs.common import IMAGENET_SETTINGS
from ijckd_jax.objectives import OBJECTIVES, DistillationOutputs, get_objective, resolve_settings
from torch_distillers import Attention, DistillKL, RKDLoss, cosine_similarity_loss

BATCH, CLASSES, POOLED, TEACHER_POOLED = 8, 10, 64, 256
# A small CIFAR ResNet's maps (stem, then three stages), [height, channels]; the teacher's are
# wider, and in the 2× cases larger or smaller.
STUDENT_STAGES = ((16, 16), (16, 16), (8, 32), (4, 64))
TEACHER_STAGES = ((16, 32), (16, 32), (8, 64), (4, 128))
LARGER_TEACHER_STAGES = ((32, 32), (32, 32), (16, 64), (8, 128))
SMALLER_TEACHER_STAGES = ((8, 32), (8, 32), (4, 64), (2, 128))
ODD_TEACHER_STAGES = ((12, 32), (12, 32), (6, 64), (3, 128))
# The reference runs in float64 (the transcription on our arrays, upcast): on one CI machine
# PyTorch's own float32 put AT's p = 1.5 gradient 3.2e-5 from float64, where ours was 1.4e-7
# from it, so a float32 reference would measure the reference's processor. Our float32
# against it, relative to the largest magnitude, over 4 draws of every case (Intel Xeon):
# ≤ 6.2e-7 for AT's and RKD's losses and gradients, ≤ 1.6e-6 for PKT's gradients; 1e-5 is the
# bound the project sets for every loss against its PyTorch source. PKT's loss is the exception:
# its KL between two nearly equal distributions keeps only ~1.5e-5 of its summands' magnitude in
# float32 and enters times β = 30000, so its rounding reaches 1.75e-5 over 72 draws; 5e-5 is
# about three times that.
TOLERANCE = 1e-5
PKT_LOSS_TOLERANCE = 5e-5


# --- RepDistiller's loss, its losses from tests/torch_distillers.py (NCHW) -------

def torch_loss_and_gradients(name, outputs, labels, settings):
    """helper/loops.py train_distill's loss, and its gradient with respect to the student's arrays
    (in our NHWC layout: the leaves are our arrays, permuted to NCHW inside). The teacher's
    arrays are constants, as train_distill computes them under torch.no_grad()."""
    leaf = lambda array: torch.tensor(np.asarray(array, np.float64), requires_grad=True)  # noqa: E731
    constant = lambda array: torch.from_numpy(np.asarray(array, np.float64))  # noqa: E731
    nchw = lambda tensor: tensor.permute(0, 3, 1, 2)  # noqa: E731
    logit_s, logit_t = leaf(outputs.student_logits), constant(outputs.teacher_logits)
    leaves = {'student_logits': logit_s}
    if name == 'at':
        stages = [leaf(stage) for stage in outputs.student_stages]
        leaves['student_stages'] = stages
        feat_s = [nchw(stage) for stage in stages]
        feat_t = [nchw(constant(stage)) for stage in outputs.teacher_stages]
        loss_kd = sum(Attention(settings['p'])(feat_s[1:], feat_t[1:]))  # g_s = feat_s[1:-1]
    else:
        f_s, f_t = leaf(outputs.student_pooled), constant(outputs.teacher_pooled)
        leaves['student_pooled'] = f_s
        loss_kd = (RKDLoss(settings['distance_weight'], settings['angle_weight'])(f_s, f_t) if name == 'rkd'
                   else cosine_similarity_loss(f_s, f_t))
    loss = (settings['ce_weight'] * F.cross_entropy(logit_s, torch.from_numpy(labels).long())
            + settings['kd_weight'] * DistillKL(settings['temperature'])(logit_s, logit_t)
            + settings['beta'] * loss_kd)
    loss.backward()
    gradient = lambda t: np.zeros(t.shape, np.float32) if t.grad is None else t.grad.numpy()  # noqa: E731
    gradients = {key: [gradient(t) for t in value] if isinstance(value, list) else gradient(value)
                 for key, value in leaves.items()}
    return loss.item(), gradients


# --- our losses on the same arrays ----------------------------------------------------------

def random_outputs(seed=0, teacher_stages=TEACHER_STAGES, signed=False):
    """Logits scaled like real ones; maps and pooled features after a ReLU, as the networks
    give them (or signed ones)."""
    rng = np.random.default_rng(seed)
    activation = (lambda x: x) if signed else (lambda x: np.maximum(x, 0))  # noqa: E731
    array = lambda *shape: activation(rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    logits = lambda: (3 * rng.standard_normal((BATCH, CLASSES))).astype(np.float32)  # noqa: E731
    stages = lambda sizes: tuple(array(BATCH, size, size, channels) for size, channels in sizes)  # noqa: E731
    return DistillationOutputs(
        student_logits=logits(), teacher_logits=logits(),
        student_pooled=array(BATCH, POOLED), teacher_pooled=array(BATCH, TEACHER_POOLED),
        student_stages=stages(STUDENT_STAGES), teacher_stages=stages(teacher_stages))


def our_loss_and_gradients(name, outputs, labels, settings):
    """The loss, its terms, and its gradients with respect to the student's arrays it reads and the
    teacher's maps or pooled features (those must be zero), in one compiled program. (The teacher's
    logits enter through the shared KD term, losses.kl_divergence_with_temperature, as in kd.py.)"""
    arrays = {'student_logits': outputs.student_logits}
    for network in ('student', 'teacher'):
        field = f'{network}_stages' if name == 'at' else f'{network}_pooled'
        arrays[field] = getattr(outputs, field)

    def loss(arrays):
        return get_objective(name).loss(outputs._replace(**arrays), labels, settings)

    (value, terms), gradients = jax.jit(jax.value_and_grad(loss, has_aux=True))(arrays)
    teacher = [leaf for key, value in gradients.items() if key.startswith('teacher') for leaf in jax.tree.leaves(value)]
    assert not any(np.any(leaf) for leaf in teacher), 'a gradient reached the teacher'
    return value, terms, gradients


def assert_close(actual, expected, what, tolerance=TOLERANCE):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    error = float(np.max(np.abs(actual - expected)))
    assert error <= tolerance * scale, f'{what}: {error:.3g} > {tolerance} × {scale:.3g}'


def labels_for(seed=1):
    return np.random.default_rng(seed).integers(0, CLASSES, BATCH).astype(np.int32)


CASES = [
    ('at', {}, {}),
    ('at', {}, {'signed': True}),  # p = 2: |f|² = f², whatever the sign
    ('at', {'p': 3.0}, {}),  # odd p on maps after a ReLU: |f|³ = f³
    ('at', {'p': 1.5, 'beta': 10.0}, {}),
    ('at', {}, {'teacher_stages': LARGER_TEACHER_STAGES}),   # the teacher's maps pooled 2×
    ('at', {}, {'teacher_stages': SMALLER_TEACHER_STAGES}),  # the student's maps pooled 2×
    ('at', {}, {'teacher_stages': ODD_TEACHER_STAGES}),  # 16 → 12, 8 → 6: overlapping windows
    ('at', {'kd_weight': 0.9, 'ce_weight': 0.1}, {}),  # AT + KD
    # One map more on the teacher's side (ResNet-50 → MobileNetV1): zipped, the last left out.
    ('at', {}, {'teacher_stages': TEACHER_STAGES + ((2, 256),)}),
    ('rkd', {}, {}),
    ('rkd', {}, {'signed': True}),
    ('rkd', {'distance_weight': 1.0, 'angle_weight': 2.0, 'beta': 3.0}, {}),
    ('rkd', {'kd_weight': 1.0, 'temperature': 2.0}, {}),  # RKD + KD
    ('pkt', {}, {}),
    ('pkt', {}, {'signed': True}),
    ('pkt', {'kd_weight': 1.0}, {}),  # PKT + KD
]


@pytest.mark.quick
@pytest.mark.parametrize('name, overrides, arrays', CASES)
def test_loss_and_gradients_match_repdistillers_pytorch_code(name, overrides, arrays):
    """Also: no gradient reaches the teacher's arrays (our_loss_and_gradients)."""
    outputs, labels = random_outputs(**arrays), labels_for()
    settings = resolve_settings(name, overrides)
    loss, terms, gradients = our_loss_and_gradients(name, outputs, labels, settings)
    expected, expected_gradients = torch_loss_and_gradients(name, outputs, labels, settings)

    assert loss.dtype == jnp.float32
    assert_close(loss, expected, 'loss', PKT_LOSS_TOLERANCE if name == 'pkt' else TOLERANCE)
    assert_close(sum(terms.values()), loss, 'the sum of the terms')
    for key, expected_gradient in expected_gradients.items():
        if key == 'student_stages':
            assert not np.any(gradients[key][0]), "the stem's map is not distilled"
            for index, (gradient, reference) in enumerate(zip(gradients[key][1:], expected_gradient[1:]), 1):
                assert np.any(reference)
                assert_close(gradient, reference, f'gradient of stage {index}')
        else:
            assert_close(gradients[key], expected_gradient, f'gradient of {key}')


@pytest.mark.quick
def test_repeated_and_dead_features_keep_the_gradients_finite():
    """Degenerate batches torch handles: two equal samples (RKD's zero differences, normalised
    with F.normalize's eps) and a dead stage (AT's all-zero attention map) match torch; an
    all-zero pooled vector gives torch's PKT a NaN gradient (sqrt at 0) and ours a finite one."""
    outputs, labels = random_outputs(), labels_for()
    pooled = outputs.student_pooled.copy()
    pooled[1] = pooled[0]
    stages = list(outputs.student_stages)
    stages[2] = stages[2].copy()
    stages[2][3] = 0.0
    outputs = outputs._replace(student_pooled=pooled, student_stages=tuple(stages))
    for name in ('rkd', 'at'):
        settings = resolve_settings(name)
        loss, _, gradients = our_loss_and_gradients(name, outputs, labels, settings)
        expected, expected_gradients = torch_loss_and_gradients(name, outputs, labels, settings)
        assert_close(loss, expected, f'{name} loss')
        key = 'student_stages' if name == 'at' else 'student_pooled'
        for gradient, reference in zip(jax.tree.leaves(gradients[key]), jax.tree.leaves(expected_gradients[key])):
            assert np.all(np.isfinite(gradient))
            assert_close(gradient, reference, f'{name} gradient')
    pooled = outputs.student_pooled.copy()
    pooled[2] = 0.0
    _, _, gradients = our_loss_and_gradients('pkt', outputs._replace(student_pooled=pooled), labels,
                                             resolve_settings('pkt'))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(gradients))


@pytest.mark.quick
def test_defaults_are_repdistillers_and_the_objectives_are_found():
    # scripts/run_cifar_distill.sh: -a 0 -b 1000 (AT), -b 1 (RKD), -b 30000 (PKT); -r and
    # --kd_T default to 1 and 4 (train_student.py).
    assert resolve_settings('at') == {'ce_weight': 1.0, 'kd_weight': 0.0, 'temperature': 4.0, 'beta': 1000.0,
                                      'p': 2.0}
    assert resolve_settings('rkd') == {'ce_weight': 1.0, 'kd_weight': 0.0, 'temperature': 4.0, 'beta': 1.0,
                                       'distance_weight': 25.0, 'angle_weight': 50.0}
    assert resolve_settings('pkt') == {'ce_weight': 1.0, 'kd_weight': 0.0, 'temperature': 4.0, 'beta': 30000.0}
    assert resolve_settings('at', IMAGENET_SETTINGS['at']) == resolve_settings('at')  # mdistiller's cfg.py defaults
    for name in ('at', 'rkd', 'pkt'):
        objective = OBJECTIVES[name]
        assert (objective.evaluation_classifier, objective.uses_teacher, objective.uses_connector,
                objective.head) == ('student', True, False, None)


@pytest.mark.quick
@pytest.mark.parametrize('name, overrides, message', [
    ('at', {'temperature': 0.0}, 'temperature must be > 0, got 0.0'),
    ('at', {'p': 0.5}, "AT's p must be ≥ 1 .* got 0.5"),
    ('at', {'beta': -1.0}, 'beta=-1.0 .* must be a finite number ≥ 0'),
    ('rkd', {'temperature': 0.0}, 'temperature must be > 0'),
    ('rkd', {'w_d': 25.0}, "no setting \\['w_d'\\]; its settings: .*distance_weight, angle_weight"),
    ('rkd', {'angle_weight': float('inf')}, 'angle_weight=inf .* must be a finite number'),
    ('pkt', {'temperature': 0.0}, 'temperature must be > 0'),
    ('pkt', {'p': 2.0}, "no setting \\['p'\\]"),
])
def test_bad_settings_are_refused(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_settings(name, overrides)

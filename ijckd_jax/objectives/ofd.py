"""OFD (Heo, Kim, Yun, Park, Kwak, Choi, ICCV 2019, "A comprehensive overhaul of feature
distillation") exactly as mdistiller defines it (github.com/megvii-research/mdistiller, commit
a08d46f, mdistiller/distillers/OFD.py): `feat_loss` (lines 11-19), `ConnectorConvBN` and its
`_build_feature_connector` (lines 22-67), `init_ofd_modules`'s margins (lines 82-109),
`OFD.train` (lines 114-121), `forward_train` (lines 129-140), `ofd_loss` and `_align_list`
(lines 142-165):

    loss_ce   = ce_weight · CE(student, labels)
    loss_feat = feat_weight · Σ_i feat_loss(C_i(s_i), pool(t_i), m_i) / 2^(n−1−i)
    feat_loss(s, t, m) = Σ [(s − m)² · 1(s > m, t ≤ m) + (s − t)² · 1(s > t, m < t ≤ 0)
                            + (s − t)² · 1(t > 0)] / batch

s_i, t_i: the student's and the teacher's maps before their ReLU, feats["preact_feats"][1:]
(`ModelOutput.preact_stages[1:]`); C_i: a k×k convolution without bias (mdistiller's init,
normal(0, √(2/(k²·C_t)))) and a BatchNorm (weight 1, bias 0) to the teacher's width, trained
with the student and not exported; pool: F.adaptive_avg_pool2d of the teacher's map to the
size of C_i(s_i), behind stop_gradient; m_i, per teacher channel, from the teacher's BatchNorm
before that ReLU (get_bn_before_relu, `ModelOutput.preact_norms`), γ and β:

    m = β − |γ|·φ(β/|γ|) / Φ(−β/|γ|)   where Φ(−β/|γ|) > 0.001, else −3·|γ|

the mean of the Gaussian N(β, γ²) below 0 (scipy's norm replaced by jax.scipy's, in float32
where mdistiller computes in float64; measured within 1e-6 relative, tests). mdistiller
divides by |γ| = 0 (a ZeroDivisionError); here that channel's margin is min(β, 0), the limit.

Which maps pair up: mdistiller pairs the last n maps of the two preact_feats[1:] lists
(`_align_list`), n the shorter list's length, and indexes the margins from the start of the
teacher's get_bn_before_relu(). Wherever mdistiller runs (its configs, resnet32x4 → resnet8x4
and ResNet50 → MobileNetV1, and Table 1's CIFAR ResNet, WRN and VGG pairs and resnet32x4 →
ShuffleV2), that is the same as here: the last n of each map list and of the teacher's norms,
n the smallest of the three lengths. Elsewhere mdistiller stops, and this pairing from the end
is kept: its CIFAR ResNet50's stage_channels omit the stem, so it builds 3 connectors for 4
maps and takes bn1-bn3's margins for maps 2-4 (ResNet50 → vgg8, → MobileNetV2); its
MobileNetV2 lists no preact_feats (here its stages, which have no ReLU) and its ShuffleV1 no
stage channels. The ShuffleNets list no BatchNorms before ReLU (mdistiller raises
NotImplementedError), so they cannot be OFD's teacher.

Defaults: mdistiller/engine/cfg.py lines 99-105 (CFG.OFD: LOSS.CE_WEIGHT 1.0, LOSS.FEAT_WEIGHT
0.001, CONNECTOR.KERNEL_SIZE 1), which configs/cifar100/ofd.yaml (resnet32x4 → resnet8x4, its
only CIFAR-100 OFD config) keeps; ImageNet's (configs/common.py IMAGENET_SETTINGS) is
configs/imagenet/r50_mv1/ofd.yaml. No KD term.

One difference: mdistiller's OFD.train puts every child in training mode, the teacher too, so
its teacher's maps use the batch's BatchNorm statistics (and update its running ones). Here
the teacher always runs in eval mode (ijckd_jax/distillation.py), with its running statistics;
the margins, from γ and β alone, are the same.
"""
import math
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn
from jax.scipy.special import erfcx
from jax.scipy.stats import norm

from ijckd_jax.models.layers import BatchNorm, adaptive_average_pool, conv
from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, total

# mdistiller/engine/cfg.py lines 99-105, the settings of configs/cifar100/ofd.yaml.
DEFAULTS = {'ce_weight': 1.0, 'feat_weight': 0.001, 'kernel_size': 1}
# The Φ(−β/|γ|) at or below which init_ofd_modules takes −3|γ| as the margin.
CDF_THRESHOLD = 0.001


def margins_from_batch_norm(scale, bias):
    """init_ofd_modules' margin of each channel from the BatchNorm's weight γ and bias β."""
    scale, bias = jnp.abs(scale.astype(jnp.float32)), bias.astype(jnp.float32)
    positive = scale > 0
    scale = jnp.where(positive, scale, 1.0)  # no division by 0; those channels are replaced below
    ratio = bias / scale
    above = norm.cdf(-ratio) > CDF_THRESHOLD
    # φ(r)/Φ(−r) = exp(−r²/2)/√(2π) / Φ(−r), written as √(2/π)/erfcx(r/√2): the same value, but
    # in float32 it keeps the margin, a difference of nearly equal terms near the threshold
    # (β/|γ| ≈ 3), within 1e-6 of mdistiller's float64 (the quotient of float32 pdf and cdf: 7e-6).
    inverse_mills_ratio = math.sqrt(2 / math.pi) / erfcx(ratio / math.sqrt(2))
    margin = jnp.where(above, bias - scale * inverse_mills_ratio, -3 * scale)
    return jnp.where(positive, margin, jnp.minimum(bias, 0.0))


class FeatureConnectors(nn.Module):
    """ConnectorConvBN on the student's distilled maps; the teacher's maps pooled to their size
    and the margins, both constants. Modules are named as in ConnectorConvBN's state dict
    (connectors.i.0, the convolution; connectors.i.1, the BatchNorm)."""
    teacher_channels: tuple
    kernel_size: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, student_output, teacher_output, examples, train: bool):
        count = len(self.teacher_channels)
        pairs = zip(student_output.preact_stages[1:][-count:], teacher_output.preact_stages[1:][-count:],
                    teacher_output.preact_norms[-count:], self.teacher_channels)
        students, teachers, margins = [], [], []
        for index, (student_map, teacher_map, (scale, bias), channels) in enumerate(pairs):
            connected = conv(channels, self.kernel_size, 1, (self.kernel_size - 1) // 2, dtype=self.dtype,
                             name=f'connectors.{index}.0')(student_map)
            connected = BatchNorm(dtype=self.dtype, name=f'connectors.{index}.1')(connected, train)
            students.append(connected.astype(jnp.float32))
            teacher_map = jax.lax.stop_gradient(teacher_map).astype(jnp.float32)
            teachers.append(adaptive_average_pool(teacher_map, *connected.shape[1:3]))
            margins.append(margins_from_batch_norm(jax.lax.stop_gradient(scale), jax.lax.stop_gradient(bias)))
        return {'students': tuple(students), 'teachers': tuple(teachers), 'margins': tuple(margins)}


def head(settings, student_shapes, teacher_shapes, dtype, examples=None):
    if not teacher_shapes.preact_norms:
        raise ValueError("OFD computes its margins from the teacher's BatchNorms before ReLU, and this teacher "
                         "lists none (mdistiller's ShuffleNets are not supported as OFD teachers: "
                         'get_bn_before_relu raises NotImplementedError); choose another teacher.')
    count = min(len(student_shapes.preact_stages) - 1, len(teacher_shapes.preact_stages) - 1,
                len(teacher_shapes.preact_norms))
    if count < 1:
        raise ValueError(f'OFD distils the maps after the first of preact_stages, but the student exposes '
                         f'{len(student_shapes.preact_stages)} and the teacher {len(teacher_shapes.preact_stages)}.')
    teacher_maps = teacher_shapes.preact_stages[1:][-count:]
    for (scale, _), teacher_map in zip(teacher_shapes.preact_norms[-count:], teacher_maps):
        if scale.shape[-1] != teacher_map.shape[-1]:
            raise ValueError(f"OFD's margins need a BatchNorm of the teacher map's width; the teacher pairs a "
                             f'{teacher_map.shape[-1]}-channel map with a {scale.shape[-1]}-channel BatchNorm.')
    return FeatureConnectors(tuple(shape.shape[-1] for shape in teacher_maps), int(settings['kernel_size']), dtype)


def feat_loss(source, target, margin):
    """mdistiller's feat_loss: the masked squared errors summed, divided by the batch size
    (torch.abs(loss).mean(dim=0).sum()); the margin broadcast over the channels (NHWC)."""
    float32 = lambda mask: mask.astype(jnp.float32)  # noqa: E731
    loss = (jnp.square(source - margin) * float32((source > margin) & (target <= margin))
            + jnp.square(source - target) * float32((source > target) & (target > margin) & (target <= 0))
            + jnp.square(source - target) * float32(target > 0))
    return jnp.abs(loss).mean(axis=0).sum()


def ofd_loss(head_output):
    """ofd_loss: Σ_i feat_loss / 2^(n−1−i), the deepest pair weighted 1."""
    pairs = list(zip(head_output['students'], head_output['teachers'], head_output['margins']))
    return sum(feat_loss(*pair) / 2 ** (len(pairs) - index - 1) for index, pair in enumerate(pairs))


def loss(outputs, labels, settings):
    return total({'ce': settings['ce_weight'] * cross_entropy(outputs.student_logits, labels),
                  'ofd': settings['feat_weight'] * ofd_loss(outputs.head)})


def check(settings):
    kernel_size = settings['kernel_size']
    if kernel_size != int(kernel_size) or kernel_size < 1:
        raise ValueError(f"OFD's kernel_size (the connector convolution's) must be a whole number ≥ 1, "
                         f'got {kernel_size}.')


OBJECTIVE = Objective(loss, evaluation_classifier='student', defaults=DEFAULTS,
                      uses_teacher=True, uses_connector=False, check=check, head=head)

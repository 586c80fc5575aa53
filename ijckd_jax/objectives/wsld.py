"""Weighted Soft Label Distillation: Zhou et al., "Rethinking Soft Labels for Knowledge
Distillation: A Bias-Variance Tradeoff Perspective", ICLR 2021.

Exactly the authors' loss (github.com/bellymonster/Weighted-Soft-Label-Distillation, commit
67820dd, knowledge_distiller.py, WSLDistiller.forward, lines 53-85):

    soft_i   = −Σ_j softmax(t/T)_ij · log_softmax(s/T)_ij               (a cross-entropy)
    ce^s_i   = −log_softmax(s)_i,y,   ce^t_i = −log_softmax(t)_i,y       (T = 1, detached)
    w_i      = 1 − exp(−max(ce^s_i / (ce^t_i + 1e-7), 0))
    loss     = CE(s, y) + alpha · T² · mean_i(w_i · soft_i)

The weight w is computed from detached logits (fc_s.detach(), fc_t.detach()): here
jax.lax.stop_gradient. The authors' repository holds the ImageNet code only (T = 2,
alpha = 2.5: knowledge_distiller.py lines 40-41; label smoothing off, imagenet_train_cfg.py
line 22, so the hard loss is plain CE). Their CIFAR-100 setting, T = 4 and alpha = 2.25 with
the same loss, is the authors' answer in the repository's issue #2 ("Set alpha to 2.25 and T to
4 as described Sec 5"; the CIFAR-100 runs used the Overhaul code base with CRD's recipe).
"""
import jax
import jax.numpy as jnp

from ijckd_jax.objectives import Objective
from ijckd_jax.objectives.losses import cross_entropy, total

# CIFAR-100: the authors' issue #2 (T = 4, alpha = 2.25).
DEFAULTS = {'temperature': 4.0, 'alpha': 2.25}

# knowledge_distiller.py line 73: added by commit 4ecf930 (June 2021, after the paper) against
# a division by a zero teacher loss.
EPSILON = 1e-7


def wsld_term(student_logits, teacher_logits, labels, temperature):
    """T² · mean(w · soft): knowledge_distiller.py lines 58-79, in float32."""
    student_logits = student_logits.astype(jnp.float32)
    teacher_logits = teacher_logits.astype(jnp.float32)
    teacher_soft_labels = jax.nn.softmax(teacher_logits / temperature, axis=1)
    soft = -jnp.sum(teacher_soft_labels * jax.nn.log_softmax(student_logits / temperature, axis=1), axis=1)
    # The focal weight reads detached logits at T = 1 (lines 65-71): no gradient flows through it.
    one_hot = jax.nn.one_hot(labels, student_logits.shape[1], dtype=jnp.float32)
    student_ce = -jnp.sum(one_hot * jax.nn.log_softmax(jax.lax.stop_gradient(student_logits), axis=1), axis=1)
    teacher_ce = -jnp.sum(one_hot * jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits), axis=1), axis=1)
    weight = 1.0 - jnp.exp(-jnp.maximum(student_ce / (teacher_ce + EPSILON), 0.0))
    return temperature ** 2 * jnp.mean(weight * soft)


def loss(outputs, labels, settings):
    return total({
        'ce': cross_entropy(outputs.student_logits, labels),  # line 81: hard_loss, weight 1
        'wsld': settings['alpha'] * wsld_term(outputs.student_logits, outputs.teacher_logits, labels,
                                              settings['temperature']),
    })


def check(settings):
    if settings['temperature'] <= 0:
        raise ValueError(f"WSLD's temperature must be > 0, got {settings['temperature']}.")


OBJECTIVE = Objective(loss, evaluation_classifier='student', defaults=DEFAULTS,
                      uses_teacher=True, uses_connector=False, check=check)

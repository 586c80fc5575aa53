"""The paper's error bound and classifier distance: the terms, the inequality, the logs, the plot."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conftest import REPOSITORY
from ijckd_jax.bound import bound_sums, classifier_comparison


def softmax(logits):
    exponentials = np.exp(logits - logits.max(-1, keepdims=True))
    return exponentials / exponentials.sum(-1, keepdims=True)


def random_case(seed, batch=4, classes=3):
    """Logits of three predictors, often agreeing (few classes), with some examples masked out."""
    rng = np.random.default_rng(seed)
    student, cross, teacher = (rng.standard_normal((batch, classes)).astype(np.float32) * rng.uniform(0.1, 5)
                               for _ in range(3))
    labels = rng.integers(0, classes, batch)
    mask = (rng.random(batch) < 0.8).astype(np.float32)
    return student, cross, teacher, labels, mask


@pytest.mark.quick
def test_the_bound_holds_for_random_logits():
    measure = jax.jit(bound_sums)
    slack = []
    for seed in range(500):
        sums = {name: float(value) for name, value in measure(*random_case(seed)).items()}
        slack.append(sums['teacher_error'] + sums['delta1'] + sums['delta2'] - sums['student_error'])
    assert min(slack) >= -1e-3
    assert min(slack) < 1e-3  # tight on some draws: the check can fail


@pytest.mark.quick
def test_each_term_agrees_with_a_direct_computation():
    student, cross, teacher, labels, mask = random_case(7, batch=40, classes=10)
    count = mask.sum()
    predicted = lambda logits: logits.argmax(-1)  # noqa: E731
    expected = {
        'student_error': 100 * ((predicted(student) != labels) * mask).sum() / count,
        'teacher_error': 100 * ((predicted(teacher) != labels) * mask).sum() / count,
        'delta1': 100 * ((predicted(student) != predicted(cross)) * mask).sum() / count,
        'delta2': 100 * ((predicted(cross) != predicted(teacher)) * mask).sum() / count,
        'delta1_l1': (np.abs(softmax(student) - softmax(cross)).sum(-1) * mask).sum() / count,
        'delta2_l1': (np.abs(softmax(cross) - softmax(teacher)).sum(-1) * mask).sum() / count,
    }
    sums = bound_sums(student, cross, teacher, labels, mask)
    for name, value in expected.items():
        assert float(sums[name]) / count == pytest.approx(value, rel=1e-5, abs=1e-6), name


@pytest.mark.quick
def test_classifier_comparison_matches_torch():
    rng = np.random.default_rng(0)
    student, teacher = rng.standard_normal((2, 64, 10)).astype(np.float32)
    result = classifier_comparison(jnp.asarray(student), jnp.asarray(teacher))
    torch_student, torch_teacher = torch.from_numpy(student.T.copy()), torch.from_numpy(teacher.T.copy())
    assert float(result['classifier_distance']) == pytest.approx(
        torch.norm(torch_teacher - torch_student).item(), rel=1e-6)
    assert float(result['classifier_cosine']) == pytest.approx(torch.nn.functional.cosine_similarity(
        torch_student.flatten(), torch_teacher.flatten(), dim=0).item(), rel=1e-5)


def test_every_epoch_logs_the_terms_and_the_plot_draws_them(distilled, tmp_path):
    workdir, summary = distilled('kd')  # resnet8 → wrn_16_1, equal widths: g_t∘Φ_s exists
    history = json.loads((workdir / 'history.json').read_text())
    assert len(history) == 2
    for entry in history:
        assert entry['student_error'] == pytest.approx(100 - entry['top1'])
        assert entry['teacher_error'] == pytest.approx(100 - summary['teacher_top1'])
        assert entry['student_error'] <= entry['teacher_error'] + entry['delta1'] + entry['delta2'] + 1e-6
        assert 0 <= entry['delta1_l1'] <= 2 and 0 <= entry['delta2_l1'] <= 2
        assert entry['classifier_distance'] > 0 and -1 <= entry['classifier_cosine'] <= 1

    result = subprocess.run([sys.executable, os.path.join(REPOSITORY, 'tools', 'plot_run.py'), str(workdir),
                             '--out', str(tmp_path / 'theory.png')], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'accuracy, bound, classifier' in result.stdout
    png = (tmp_path / 'theory.png').read_bytes()
    assert png.startswith(b'\x89PNG\r\n\x1a\n') and len(png) > 10_000


def test_objectives_under_the_teacher_classifier_have_no_delta1(distilled):
    workdir, _ = distilled('ijckd')
    entry = json.loads((workdir / 'history.json').read_text())[0]
    assert entry['delta1'] == 0 and entry['delta1_l1'] == 0  # f_s is g_t∘conn∘Φ_s itself
    assert 'classifier_distance' not in entry

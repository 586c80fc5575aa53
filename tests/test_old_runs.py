"""A run directory that an earlier version of this project wrote resumes, reports, exports and
plots with today's code: fixtures/run_64d0c21 is a resnet8 trained for one epoch of two steps
on the digits (8 pixels) by commit 64d0c21 on four CPU devices, before runs became tables of one
(fixtures/make_run_64d0c21.py wrote it; its summary.json lacks the fields added since)."""
import json
import os
import shutil

import pytest

from conftest import REPOSITORY
from ijckd_jax.cli import plot
from ijckd_jax.deploy.artifact import export_run
from ijckd_jax.report import runs as report_runs, tables as report_tables
from ijckd_jax.training.loop import train_and_evaluate

FIXTURE = os.path.join(REPOSITORY, 'tests', 'fixtures', 'run_64d0c21')


@pytest.fixture
def old_run(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / 'run')
    return tmp_path / 'run'


def fixture_config(num_epochs):
    """fixtures/make_run_64d0c21.py's config, today."""
    from configs import cifar_teacher

    config = cifar_teacher.get_config('resnet8,data=digits')
    config.data.image_size = 8
    config.update(dict(num_epochs=num_epochs, steps_per_epoch=2, global_batch_size=8, eval_batch_size=40))
    return config


def test_an_old_run_reports_plots_and_exports(old_run, tmp_path, capsys):
    runs, left_out = report_runs.load_runs([str(old_run)])
    assert left_out == [] and [(run.setting.objective, run.setting.epochs, run.best_top1) for run in runs] == [
        ('ce', 1, 7.5)]
    assert '| digits  | ce     | resnet8           |      1 |     1 |       7.50 |       7.50 |     — |' in \
        report_tables.format_table(report_tables.summarize_settings(runs))
    assert plot.main([str(old_run), '--out', str(tmp_path / 'run.png')]) == 0
    assert (tmp_path / 'run.png').stat().st_size > 0
    # The shipped model is checked against the training evaluation's logits before it is written.
    description = export_run(str(old_run), str(tmp_path / 'shipped'))
    assert (description['architecture']['student'], description['step']) == ('resnet8', 2)


def test_an_old_run_resumes_where_it_stopped(old_run):
    history = json.loads((old_run / 'history.json').read_text())
    summary = train_and_evaluate(fixture_config(num_epochs=2), str(old_run))
    assert (summary['epochs'], summary['num_epochs'], summary['best_step'] in (2, 4)) == (2, 2, True)
    resumed = json.loads((old_run / 'history.json').read_text())
    assert resumed[0] == history[0] and [entry['step'] for entry in resumed] == [2, 4]
    assert sorted(os.listdir(old_run / 'checkpoints'), key=int) == ['2', '4']

"""The offline demo, training on an image folder, and evaluation batches the devices do not divide."""
import json
import os
import re

import numpy as np
import pytest

from configs import demo
from conftest import CPU_DEVICES, REPOSITORY
from ijckd_jax.cli import predict as predict_command
from ijckd_jax.config import validate_config
from ijckd_jax.data.folders import class_names
from ijckd_jax.deploy.artifact import export_run
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.demo import run_demo
from ijckd_jax.training import steps
from ijckd_jax.training.experiment import create_experiment
from ijckd_jax.training.loop import evaluate, train_and_evaluate
from ijckd_jax.training.mesh import Mesh
from test_sources import folder_config, write_folder


def test_demo_trains_the_teacher_then_each_student_and_prints_the_table(tmp_path, capsys, caplog):
    config = demo.get_config()
    config.demo.teacher = 'resnet8'  # smaller than the demo's resnet20, and test_without_tensorflow's demo
    config.update(dict(num_epochs=1, steps_per_epoch=2))
    with caplog.at_level('INFO', logger='absl'):
        run_demo(config, str(tmp_path))
    printed = capsys.readouterr().out
    # docs/demo.md's count of the demo's log lines: one per epoch of its two runs (the teacher's,
    # the students' table), and the rest, which does not grow with the epochs.
    logged = [record for record in caplog.records if record.name == 'absl' and 'orbax' not in record.pathname]
    stated = re.search(r'its own log is (\d+) lines: (\d+) and one per epoch of each of its two runs', ' '.join(
        open(os.path.join(REPOSITORY, 'docs', 'demo.md')).read().split()))
    assert (int(stated[1]), int(stated[2])) == (len(logged) - 2 + 2 * demo.get_config().num_epochs, len(logged) - 2), \
        [record.getMessage() for record in logged]
    assert (tmp_path / 'demo.md').read_text().strip() in printed
    rows = [line for line in printed.splitlines()
            if line.startswith(('| teacher', '| student')) and ' M | ' not in line]
    assert [row.split('|')[1:3] for row in rows] == [[' teacher resnet8 ', ' ce '], [' student resnet8 ', ' ce '],
                                                     [' student resnet8 ', ' kd '], [' student resnet8 ', ' ijckd ']]
    # The students trained as one comparison table, each method's run in students/METHOD/seed_0.
    runs = ['teacher'] + [os.path.join('students', method, 'seed_0') for method in ('ce', 'kd', 'ijckd')]
    best = {}
    for row, run in zip(rows, runs):
        summary = json.loads((tmp_path / run / 'summary.json').read_text())
        assert f"{summary['last_top1']:.2f} |" in row and f"{summary['best_top1']:.2f} (1)" in row
        best[run.split(os.sep)[1] if os.sep in run else run] = summary['best_top1']
    student = json.loads((tmp_path / runs[-1] / 'summary.json').read_text())
    assert student['teacher'] == 'resnet8' and student['objective'] == 'ijckd'
    # The paired differences against KD, one seed: IJCKD's best top-1 less KD's.
    paired = {line.split('|')[1].strip(): [cell.strip() for cell in line.split('|')[6:8]]
              for line in printed.splitlines() if line.startswith(('| ce ', '| kd ', '| ijckd '))}
    assert paired['ijckd'] == [f"{best['ijckd'] - best['kd']:+.2f}", '1 of 1' if best['ijckd'] > best['kd'] else
                               '0 of 1']
    assert paired['kd'] == ['—', '—']
    # The IJCKD student shipped beside its teacher: the shipped file's test top-1 is the run's.
    shipped = [line.split(' | ') for line in printed.splitlines() if ' M | ' in line]
    assert [row[0] for row in shipped] == ['| teacher resnet8', '| IJCKD student resnet8']
    for row in shipped:
        assert row[4] == row[5].removesuffix(' |')
    assert json.loads((tmp_path / 'shipped' / 'student_ijckd' / 'model.json').read_text())['architecture'] == {
        'student': 'resnet8', 'connector': '1x1', 'classifier': "the frozen teacher resnet8's classifier"}


@pytest.mark.quick
def test_training_on_an_image_folder_end_to_end_and_its_shipped_model_names_the_classes(tmp_path, capsys):
    root = write_folder(tmp_path / 'images')
    config = folder_config(root)
    config.student.model = 'resnet8'
    config.update(dict(num_epochs=1, log_every_steps=1))
    summary = train_and_evaluate(config, str(tmp_path / 'run'))
    assert summary['dataset'] == str(tmp_path / 'images') and summary['epochs'] == 1
    history = json.loads((tmp_path / 'run' / 'history.json').read_text())
    assert history[0]['step'] == 3  # 12 readable training images, batches of 4
    description = export_run(str(tmp_path / 'run'), str(tmp_path / 'shipped'))
    assert description['class_names'] == class_names(root, 'train')
    capsys.readouterr()
    assert predict_command.main([str(tmp_path / 'shipped'), str(tmp_path / 'images' / 'test')]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # predict reads each image as the run's evaluation did: its top-1 is the run's last top-1.
    predicted = {path: ranking.split()[0] for path, ranking in (line.split(': ', 1) for line in lines)}
    assert len(predicted) == 12 and set(predicted.values()) <= set(description['class_names'])
    hits = [os.path.basename(os.path.dirname(path)) == name for path, name in predicted.items()]
    assert 100 * np.mean(hits) == summary['last_top1']


def test_an_evaluation_batch_the_devices_do_not_divide_is_padded_and_counts_every_image(tmp_path):
    """500 on an 8-GPU host: here 6 on 4 devices is padded to 8, the padding masked, and the
    accuracy is that of batches of 4, to the last bit."""
    root = write_folder(tmp_path / 'images')
    accuracies = []
    for eval_batch_size in (6, 4):
        config = folder_config(root)
        config.student.model, config.eval_batch_size = 'resnet8', eval_batch_size
        validate_config(config, len(CPU_DEVICES))
        pipeline = Pipeline(config, 0, 1, len(CPU_DEVICES))
        mesh = Mesh(CPU_DEVICES)
        experiment = create_experiment(config, mesh, pipeline.steps_per_epoch, {})
        assert pipeline.local_eval_batch == {6: 8, 4: 4}[eval_batch_size]
        accuracies.append(evaluate(lambda batch: steps.evaluate(experiment.state, {}, batch, experiment.spec),
                                   pipeline.evaluation(), mesh)['ce'])
        assert sum(mask.sum() for _, _, mask in pipeline.evaluation()) == 12
    losses = [accuracy.pop('loss') for accuracy in accuracies]
    assert accuracies[0] == accuracies[1]
    # The test loss's float32 sums group the 12 terms (each ~1) otherwise: at most 12 roundings
    # apart, 7e-7 of the sum (measured 7.3e-8).
    assert losses[0] == pytest.approx(losses[1], rel=12 * 2 ** -24)

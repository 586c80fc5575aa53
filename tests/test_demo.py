"""The offline demo and training on an image folder, end to end (shortened)."""
import json
import os
import sys

from ijckd_jax.demo import run_demo
from ijckd_jax.train import train_and_evaluate
from test_sources import folder_config, write_folder

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPOSITORY, 'configs'))
import demo  # noqa: E402


def test_demo_trains_the_teacher_then_each_student_and_prints_the_table(tmp_path, capsys):
    config = demo.get_config()
    config.demo.teacher = 'resnet14'  # smaller than the demo's resnet20: a faster compile
    config.update(dict(num_epochs=1, steps_per_epoch=2, log_every_steps=1))
    run_demo(config, str(tmp_path))
    printed = capsys.readouterr().out
    assert (tmp_path / 'demo.md').read_text().strip() in printed
    rows = [line for line in printed.splitlines() if line.startswith('| teacher') or line.startswith('| student')]
    assert [row.split('|')[1:3] for row in rows] == [[' teacher resnet14 ', ' ce '], [' student resnet8 ', ' ce '],
                                                     [' student resnet8 ', ' kd '], [' student resnet8 ', ' ijckd ']]
    for row, run in zip(rows, ['teacher', 'student_ce', 'student_kd', 'student_ijckd']):
        summary = json.loads((tmp_path / run / 'summary.json').read_text())
        assert f"{summary['last_top1']:.2f} |" in row and f"{summary['best_top1']:.2f} (1)" in row
    student = json.loads((tmp_path / 'student_ijckd' / 'summary.json').read_text())
    assert student['teacher'] == 'resnet14' and student['objective'] == 'ijckd'


def test_training_on_an_image_folder_end_to_end(tmp_path):
    config = folder_config(write_folder(tmp_path / 'images'))
    config.student.model = 'resnet8'
    config.update(dict(num_epochs=1, log_every_steps=1))
    summary = train_and_evaluate(config, str(tmp_path / 'run'))
    assert summary['dataset'] == str(tmp_path / 'images') and summary['epochs'] == 1
    history = json.loads((tmp_path / 'run' / 'history.json').read_text())
    assert history[0]['step'] == 3  # 12 readable training images, batches of 4

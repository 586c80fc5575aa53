"""The offline demo (configs/demo.py): a teacher, then one student trained several ways as one
comparison table (ijckd_jax/table.py), and the IJCKD student shipped beside its teacher."""
import os
import shutil

import jax
import ml_collections
import numpy as np
from absl import logging

from ijckd_jax.config import named, validate_config
from ijckd_jax.data.pipeline import load_split
from ijckd_jax.deploy.artifact import call_artifact, export_run
from ijckd_jax.deploy.cost import latency
from ijckd_jax.errors import ConfigError
from ijckd_jax.frozen_model import ARTIFACT
from ijckd_jax.models import check_model_name
from ijckd_jax.objectives import get_objective, resolve_settings
from ijckd_jax.report import runs as report_runs, tables as report_tables
from ijckd_jax.training.layout import split_methods, table_config
from ijckd_jax.training.loop import train_and_evaluate


def single_run_config(config, model):
    """A copy of the demo's config for one ordinary run that trains `model`."""
    derived = ml_collections.ConfigDict(config.to_dict())
    del derived['demo']
    derived.program = 'train'
    derived.student.model = model
    return derived


def student_config(config, method, teacher_directory):
    """The demo's student trained with `method`, the teacher loaded from teacher_directory."""
    derived = single_run_config(config, config.demo.student)
    derived.loss = ml_collections.ConfigDict(dict(name=method, **resolve_settings(method)))
    if method != 'ce':
        derived.teacher.model, derived.teacher.checkpoint = config.demo.teacher, teacher_directory
    return derived


def check_demo(config):
    """The demo's models and methods by the fields that name them, then every run it trains,
    before the teacher trains: a mistake in the students is found before, not after, it.
    Returns the methods."""
    named('demo.teacher', check_model_name, config.demo.teacher)
    named('demo.student', check_model_name, config.demo.student)
    methods = split_methods(config.demo.methods, 'demo.methods')
    if not methods:
        raise ConfigError(f'config.demo.methods={config.demo.methods!r} names no method; e.g. '
                          '--config.demo.methods=ce,kd,ijckd.')
    for method in methods:
        named('demo.methods', get_objective, method)
    validate_config(single_run_config(config, config.demo.teacher), jax.device_count())
    for method in methods:
        validate_config(student_config(config, method, ''), jax.device_count(), teacher_trained=False)
    return methods


def run_demo(config, workdir):
    """Trains the teacher, then the student with every method as one table (the teacher's
    forward computed once per batch for all, the same batches and initialisation for each);
    prints and returns the tables."""
    methods = check_demo(config)
    logging.info('Demo 1/2: the teacher %s with cross-entropy.', config.demo.teacher)
    teacher_summary = train_and_evaluate(single_run_config(config, config.demo.teacher),
                                         os.path.join(workdir, 'teacher'))
    rows = [(f'teacher {config.demo.teacher}', 'ce', teacher_summary)]
    teacher_directory = os.path.join(workdir, 'teacher', 'export')
    logging.info('Demo 2/2: the student %s with %s, as one table.', config.demo.student, ', '.join(methods))
    students = os.path.join(workdir, 'students')
    table = table_config({method: student_config(config, method, teacher_directory) for method in methods},
                         ','.join(methods))
    summaries = dict(zip(methods, train_and_evaluate(table, students)))
    rows += [(f'student {config.demo.student}', method, summaries[method]) for method in methods]
    table = format_demo_table(rows, config) + '\n\n' + paired_differences(students)
    if 'ijckd' in methods:
        table += '\n\n' + ship(config, workdir, [
            ('teacher', 'teacher', f'teacher {config.demo.teacher}', teacher_summary),
            (os.path.join('students', 'ijckd', f'seed_{config.seed}'), 'student_ijckd',
             f'IJCKD student {config.demo.student}', summaries['ijckd'])])
    with open(os.path.join(workdir, 'demo.md'), 'w') as file:
        file.write(table + '\n')
    print(table)
    return table


def paired_differences(students):
    """The report's view of the students' table: each method against KD (or the first method)
    on the same initialisation and batches."""
    methods, seeds, runs = report_runs.load_table(students)
    baseline = 'kd' if 'kd' in methods else methods[0]
    return (f'Paired against {baseline} (same initialisation, batches, crops and flips):\n\n'
            + report_tables.format_table_rows(report_tables.summarize_table(methods, seeds, runs, baseline), baseline))


def ship(config, workdir, runs):
    """Exports each of `runs` ((run folder, shipped folder, name, summary)) as
    tools/export_student.py does, into workdir/shipped/, and tabulates what each costs and its
    shipped file's test top-1."""
    split = load_split(config.data, config.data.eval_split, 0, 1)
    size = config.data.image_size
    lines = ['Shipped (BatchNorm folded, jax.export; latency at batch 1 on this machine):', '',
             '| model | parameters | MACs / image | latency | test top-1 of the shipped file | last top-1 of the run |',
             '| --- | --- | --- | --- | --- | --- |']
    for run, shipped, name, summary in runs:
        out = os.path.join(workdir, 'shipped', shipped)
        shutil.rmtree(out, ignore_errors=True)  # the demo's own export of an earlier, shorter run
        logging.info('Shipping %s to %s.', name, out)
        description = export_run(os.path.join(workdir, run), out)
        with open(os.path.join(out, ARTIFACT), 'rb') as file:
            serialized = file.read()
        top1 = 100 * np.mean(call_artifact(serialized, split.images).argmax(axis=1) == split.labels)
        lines.append(f"| {name} | {description['parameters']['total']:,} | "
                     f"{description['macs_per_image'] / 1e6:.1f} M | {latency(serialized, size, 1) * 1000:.2f} ms | "
                     f"{top1:.2f} | {summary['last_top1']:.2f} |")
    return '\n'.join(lines)


def format_demo_table(rows, config):
    lines = [f'Test top-1 (%) on {config.data.dataset}, {config.num_epochs} epochs, seed {config.seed}:',
             '', '| model | method | best top-1 (epoch) | last top-1 |', '| --- | --- | --- | --- |']
    for model, method, summary in rows:
        lines.append(f"| {model} | {method} | {summary['best_top1']:.2f} ({summary['best_epoch']}) "
                     f"| {summary['last_top1']:.2f} |")
    return '\n'.join(lines)

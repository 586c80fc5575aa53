"""The results report: finding runs, statistics over seeds, the paper column, errors, the CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ijckd_jax.report import runs as report_runs, tables as report_tables
from ijckd_jax.cli import plot
from ijckd_jax.cli import report as report_cli
from ijckd_jax.run_plot import read_run_history
from ijckd_jax.training.workdir import summarize

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IJCKD_DEFAULTS = {'name': 'ijckd', 'alpha_ce': 1.0, 'alpha_lm': 1.0, 'beta_fm': 0.0, 'logit_loss': 'mse'}
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def write_run(directory, best_top1=76.0, last_top1=75.5, seed=0, objective='ijckd', loss=None,
              connector='1x1', teacher='resnet32x4', student='resnet8x4', dataset='cifar100', epochs=3,
              config=None):
    """A finished run's directory with summary.json and history.json; returns its path."""
    os.makedirs(directory)
    history = [{'epoch': epoch, 'step': 781 * epoch, 'top1': last_top1 - (epochs - epoch), 'top5': 90.0}
               for epoch in range(1, epochs + 1)]
    summary = {'dataset': dataset, 'objective': objective,
               'loss': dict(IJCKD_DEFAULTS) if loss is None else loss, 'connector': connector,
               'student': student, 'teacher': teacher, 'seed': seed, 'best_top1': best_top1, 'best_top5': 90.0,
               'best_epoch': epochs, 'best_step': 781 * epochs, 'best_checkpoint': f'checkpoints/{781 * epochs}',
               'last_top1': last_top1, 'last_top5': 90.0, 'epochs': epochs,
               'teacher_top1': 79.4 if teacher else None}
    if config is not None:  # runs record their config's math fields since the report groups by them
        summary['config'] = {**config, 'seed': seed}
    with open(os.path.join(directory, 'summary.json'), 'w') as file:
        json.dump(summary, file)
    with open(os.path.join(directory, 'history.json'), 'w') as file:
        json.dump(history, file)
    return str(directory)


@pytest.mark.quick
def test_a_history_with_epochs_counted_from_0_is_read_counted_from_1(tmp_path):
    """history.json written before epochs were counted from 1, as the console counts them (its
    first entry is epoch 0), reads as one written now, by the report and by the run's plot."""
    new = write_run(tmp_path / 'new')
    old = write_run(tmp_path / 'old')
    history = json.loads((tmp_path / 'old' / 'history.json').read_text())
    (tmp_path / 'old' / 'history.json').write_text(json.dumps([{**entry, 'epoch': entry['epoch'] - 1}
                                                               for entry in history]))
    assert report_runs.read_history(old) == report_runs.read_history(new) == [(1, 73.5), (2, 74.5), (3, 75.5)]
    assert [entry['epoch'] for entry in read_run_history(old)] == [1, 2, 3]


def table_rows(paths):
    """The data lines of the printed table, split into stripped cells."""
    runs, _ = report_runs.load_runs(paths)
    return split_cells(report_tables.format_table(report_tables.summarize_settings(runs)).splitlines()[2:])


def split_cells(lines):
    """Markdown table lines as lists of stripped cells."""
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in lines]


def run_cli(*arguments):
    return subprocess.run([sys.executable, os.path.join(REPOSITORY, 'tools', 'report.py'), *arguments],
                          capture_output=True, text=True, timeout=120)


def report_in_process(capsys, *arguments):
    """(exit status, stdout, stderr) of ijckd-report run in this process (no interpreter start)."""
    status = report_cli.main(list(arguments))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.quick
def test_the_mean_and_sample_std_over_seeds(tmp_path):
    for seed, (best, last) in enumerate([(70.0, 69.0), (72.0, 70.0), (74.0, 74.0)]):
        write_run(tmp_path / f'seed{seed}', best_top1=best, last_top1=last, seed=seed)
    [row] = table_rows([str(tmp_path)])
    assert row == ['cifar100', 'ijckd', 'resnet32x4 → resnet8x4', '3', '3', '72.00 ± 2.00', '71.00 ± 2.65',
                   '76.52']


@pytest.mark.quick
def test_one_seed_prints_the_mean_alone(tmp_path):
    write_run(tmp_path / 'run', best_top1=71.234, last_top1=70.5)
    [row] = table_rows([str(tmp_path / 'run')])
    assert row[4:7] == ['1', '71.23', '70.50']


@pytest.mark.quick
def test_the_paper_column_matches_settings_exactly(tmp_path):
    write_run(tmp_path / 'default', loss={'name': 'ijckd'})  # omitted settings are the defaults
    write_run(tmp_path / 'alpha_ce', loss={**IJCKD_DEFAULTS, 'alpha_ce': 0.2})
    write_run(tmp_path / 'unknown', loss={**IJCKD_DEFAULTS, 'alpha_ce': 0.3})
    write_run(tmp_path / 'cosine', loss={**IJCKD_DEFAULTS, 'alpha_lm': 10, 'logit_loss': 'cosine'})
    write_run(tmp_path / 'connector', connector='1x1-3x3-1x1')
    write_run(tmp_path / 'wrn', teacher='wrn_40_2', student='wrn_40_1')
    write_run(tmp_path / 'imagenet', dataset='imagenet2012')
    write_run(tmp_path / 'kd', objective='kd', connector=None,
              loss={'name': 'kd', 'ce_weight': 0.1, 'kd_weight': 0.9, 'temperature': 4.0})
    write_run(tmp_path / 'vanilla', objective='ce', loss={'name': 'ce'}, connector=None, teacher=None)
    paper = {(row[0], row[1], row[2]): row[7] for row in table_rows([str(tmp_path)])}
    assert paper == {
        ('cifar100', 'ijckd', 'resnet32x4 → resnet8x4'): '76.52',
        ('cifar100', 'ijckd (alpha_ce=0.2)', 'resnet32x4 → resnet8x4'): '76.61',
        ('cifar100', 'ijckd (alpha_ce=0.3)', 'resnet32x4 → resnet8x4'): '—',
        ('cifar100', 'ijckd (alpha_lm=10, logit_loss=cosine)', 'resnet32x4 → resnet8x4'): '76.86',
        ('cifar100', 'ijckd (connector 1x1-3x3-1x1)', 'resnet32x4 → resnet8x4'): '77.76',
        ('cifar100', 'ijckd', 'wrn_40_2 → wrn_40_1'): '75.14',
        ('imagenet2012', 'ijckd', 'resnet32x4 → resnet8x4'): '—',
        ('cifar100', 'kd', 'resnet32x4 → resnet8x4'): '73.33',
        ('cifar100', 'ce', 'resnet8x4'): '72.50',
    }


@pytest.mark.quick
def test_the_other_methods_get_their_sources_published_numbers(tmp_path):
    """As their config files set them up: RepDistiller's README for FitNet and CRD, mdistiller's
    for DKD with its per-pair β; DKD at another β is not the published setting."""
    from configs import cifar

    def write(name, method, pair, **changes):
        config = cifar.get_config(f'{method},{pair}')
        teacher, student = pair.split('-')
        write_run(tmp_path / name, objective=config.loss.name, connector=None, teacher=teacher, student=student,
                  loss={**config.loss.to_dict(), **changes})

    write('fitnet', 'fitnet', 'resnet32x4-resnet8x4')
    write('crd', 'crd', 'vgg13-MobileNetV2')
    write('dkd', 'dkd', 'resnet56-resnet20')
    write('dkd_beta', 'dkd', 'resnet56-resnet20', beta=8.0)
    paper = {(row[1], row[2]): row[7] for row in table_rows([str(tmp_path)])}
    assert paper == {('fitnet', 'resnet32x4 → resnet8x4'): '73.50', ('crd', 'vgg13 → MobileNetV2'): '69.73',
                     ('dkd (beta=2)', 'resnet56 → resnet20'): '71.97', ('dkd', 'resnet56 → resnet20'): '—'}


@pytest.mark.quick
def test_grouping_separates_settings_and_sorts_rows(tmp_path):
    write_run(tmp_path / 'a0', seed=0, best_top1=76.0)
    write_run(tmp_path / 'a1', seed=1, best_top1=77.0)
    write_run(tmp_path / 'b0', seed=0, best_top1=70.0, loss={**IJCKD_DEFAULTS, 'alpha_ce': 0.2})
    write_run(tmp_path / 'c0', seed=0, best_top1=60.0, connector='1x1-1x1')
    write_run(tmp_path / 'd0', seed=0, best_top1=50.0, teacher='wrn_40_2', student='wrn_40_1')
    write_run(tmp_path / 'e0', seed=0, best_top1=40.0, objective='simkd', loss={'name': 'simkd'})
    write_run(tmp_path / 'f0', seed=0, best_top1=72.0, objective='ce', loss={'name': 'ce'},
              connector=None, teacher=None, student='resnet8x4')
    rows = table_rows([str(tmp_path)])
    assert [(row[1], row[2], row[4], row[5]) for row in rows] == [
        ('ce', 'resnet8x4', '1', '72.00'),  # no teacher sorts first
        ('ijckd', 'resnet32x4 → resnet8x4', '2', '76.50 ± 0.71'),
        ('ijckd (alpha_ce=0.2)', 'resnet32x4 → resnet8x4', '1', '70.00'),
        ('ijckd (connector 1x1-1x1)', 'resnet32x4 → resnet8x4', '1', '60.00'),
        ('simkd', 'resnet32x4 → resnet8x4', '1', '40.00'),
        ('ijckd', 'wrn_40_2 → wrn_40_1', '1', '50.00'),
    ]


@pytest.mark.quick
def test_runs_of_different_configs_never_share_a_row(tmp_path):
    """Eighteen runs that differ in more than their seed are as many rows as configs, each
    labelled by the fields that tell it from its twins; only seeds are averaged."""
    base = {'optimizer.learning_rate': 0.05, 'optimizer.decay_epochs': [150, 180, 210], 'num_classes': 100}
    for rate in (0.05, 0.1):
        for epochs in ([150, 180, 210], [30, 60, 90]):
            for seed in range(3):
                config = {**base, 'optimizer.learning_rate': rate, 'optimizer.decay_epochs': epochs}
                write_run(tmp_path / f'{rate}_{epochs[0]}_{seed}', seed=seed, best_top1=70 + seed, config=config)
    write_run(tmp_path / 'old', seed=5)  # written before runs recorded their config
    rows = table_rows([str(tmp_path)])
    assert [(row[1], row[4]) for row in rows] == [
        ('ijckd [config not recorded]', '1'),
        ('ijckd [optimizer.decay_epochs=[150, 180, 210], optimizer.learning_rate=0.05]', '3'),
        ('ijckd [optimizer.decay_epochs=[150, 180, 210], optimizer.learning_rate=0.1]', '3'),
        ('ijckd [optimizer.decay_epochs=[30, 60, 90], optimizer.learning_rate=0.05]', '3'),
        ('ijckd [optimizer.decay_epochs=[30, 60, 90], optimizer.learning_rate=0.1]', '3')]
    assert {row[5] for row in rows[1:]} == {'71.00 ± 1.00'}


def test_nested_directories_are_found_once(tmp_path):
    write_run(tmp_path / 'sweep' / 'alpha' / 'seed0', seed=0)
    write_run(tmp_path / 'sweep' / 'beta' / 'deeper' / 'seed1', seed=1)
    write_run(tmp_path / 'other', seed=2)
    os.makedirs(tmp_path / 'sweep' / 'alpha' / 'seed0' / 'checkpoints' / '10')
    runs, left_out = report_runs.load_runs([str(tmp_path / 'sweep'), str(tmp_path), str(tmp_path / 'other')])
    assert sorted(run.seed for run in runs) == [0, 1, 2]
    assert left_out == []


@pytest.mark.quick
def test_a_seed_in_two_directories_is_refused_from_the_mean(tmp_path, capsys):
    """Which of two runs of one seed counts is not the report's to guess: neither does, and one
    line names both (issue 36, item 1)."""
    first = write_run(tmp_path / 'runs' / 'first', seed=0, best_top1=70.0)
    second = write_run(tmp_path / 'runs' / 'second', seed=0, best_top1=80.0)
    write_run(tmp_path / 'runs' / 'third', seed=1, best_top1=74.0)
    status, out, err = report_in_process(capsys, str(tmp_path / 'runs'))
    assert status == 0, err
    assert split_cells(out.splitlines()[2:]) == [
        ['cifar100', 'ijckd', 'resnet32x4 → resnet8x4', '3', '1', '74.00', '75.50', '76.52']]
    assert err == (f'warning: seed 0 of ijckd, resnet32x4 → resnet8x4, 3 epochs, is in 2 run directories, '
                   f'{first} and {second}; refused from the mean (move all but one away)\n')


@pytest.mark.quick
def test_a_missing_or_empty_directory_is_an_error_naming_it(tmp_path):
    with pytest.raises(report_runs.ReportError, match='nowhere.*does not exist'):
        report_runs.load_runs([str(tmp_path / 'nowhere')])
    os.makedirs(tmp_path / 'empty' / 'checkpoints')
    with pytest.raises(report_runs.ReportError, match='empty holds no run, neither in it nor below it'):
        report_runs.load_runs([str(tmp_path / 'empty')])
    os.makedirs(tmp_path / 'unfinished')
    (tmp_path / 'unfinished' / 'run.json').write_text('{}')
    with pytest.raises(report_runs.ReportError) as error:
        report_runs.load_runs([str(tmp_path / 'unfinished')])
    assert str(error.value) == (f"No finished run to report: {tmp_path / 'unfinished'} is not finished, left out: "
                                'no summary.json yet (it is written when training ends).')


@pytest.mark.parametrize('content, problem', [
    ('{"dataset": "cifar100", ', 'not valid JSON'),
    ('[1, 2]', 'expected a JSON object'),
    ('{"dataset": "cifar100", "objective": "ijckd"}', 'lacks loss, connector, student'),
])
def test_a_malformed_summary_is_an_error_naming_the_file(tmp_path, content, problem):
    write_run(tmp_path / 'good')
    os.makedirs(tmp_path / 'bad')
    (tmp_path / 'bad' / 'summary.json').write_text(content)
    with pytest.raises(report_runs.ReportError, match='bad.summary.json') as error:
        report_runs.load_runs([str(tmp_path)])
    assert problem in str(error.value)


def test_a_summary_with_a_wrong_value_is_an_error_naming_the_field(tmp_path):
    write_run(tmp_path / 'run', best_top1=None)
    with pytest.raises(report_runs.ReportError, match=r'run.summary.json is malformed: best_top1'):
        report_runs.load_runs([str(tmp_path)])


@pytest.mark.quick
def test_the_cli_prints_the_table_and_plots(tmp_path):
    write_run(tmp_path / 'runs' / 'seed0', best_top1=70.0, seed=0)
    write_run(tmp_path / 'runs' / 'seed1', best_top1=74.0, seed=1)
    write_run(tmp_path / 'runs' / 'alpha', loss={**IJCKD_DEFAULTS, 'alpha_ce': 0.2})
    plot = tmp_path / 'accuracy.png'
    result = run_cli(str(tmp_path / 'runs'), '--plot', str(plot))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [cell.strip() for cell in lines[0].strip('|').split('|')] == [
        'dataset', 'method', 'teacher → student', 'epochs', 'seeds', 'best top-1', 'last top-1', 'paper']
    assert set(lines[1]) <= set('|-:')
    assert '| 72.00 ± 2.83 |' in lines[2] and lines[2].rstrip().endswith('| 76.52 |')
    assert 'ijckd (alpha_ce=0.2)' in lines[3] and lines[3].rstrip().endswith('| 76.61 |')
    assert len(lines) == 4
    assert plot.read_bytes()[:8] == PNG_SIGNATURE and plot.stat().st_size > 1000


def test_the_cli_exits_2_naming_bad_input(tmp_path):
    result = run_cli(str(tmp_path / 'missing'))
    assert result.returncode == 2
    assert 'missing does not exist' in result.stderr and result.stdout == ''
    write_run(tmp_path / 'run')
    (tmp_path / 'run' / 'history.json').write_text('{"epoch": 0}')
    result = run_cli(str(tmp_path / 'run'), '--plot', str(tmp_path / 'accuracy.png'))
    assert result.returncode == 2 and 'history.json is malformed' in result.stderr
    assert not (tmp_path / 'accuracy.png').exists()


def write_table(directory, best_top1s):
    """A comparison table's workdir: table.json and, per method, a run for each seed given a
    best top-1 (None: not finished)."""
    seeds = range(len(next(iter(best_top1s.values()))))
    os.makedirs(directory)
    with open(os.path.join(directory, 'table.json'), 'w') as file:
        json.dump({'methods': list(best_top1s), 'seeds': list(seeds), 'config': {}}, file)
    for method, values in best_top1s.items():
        settings = dict(objective=method, loss=dict(IJCKD_DEFAULTS) if method == 'ijckd' else {'name': method},
                        connector='1x1' if method == 'ijckd' else None,
                        teacher=None if method == 'ce' else 'resnet32x4')
        for seed, best in zip(seeds, values):
            if best is not None:
                write_run(os.path.join(directory, method, f'seed_{seed}'), best_top1=best, last_top1=best - 1,
                          seed=seed, **settings)
    return str(directory)


@pytest.mark.quick
def test_a_table_reports_paired_differences_against_its_baseline(tmp_path):
    table = write_table(tmp_path / 'table', {'ce': [72.5, 74.5, 71.0], 'kd': [73.0, 74.0, 72.0],
                                             'ijckd': [76.0, 75.5, None]})
    result = run_cli(table, '--plot', str(tmp_path / 'table.png'))
    assert result.returncode == 0, result.stderr
    rows = [[cell.strip() for cell in line.strip('|').split('|')] for line in result.stdout.splitlines()]
    assert rows[0] == ['method', 'seeds', 'best top-1', 'last top-1', 'best top-1 per seed', 'paired Δ best vs kd',
                       'ahead of kd', 'paper']
    # By hand: ce − kd per seed −0.5, +0.5, −1.0: mean −0.33, sample std 0.76; ijckd − kd on the
    # two seeds it finished, +3.0 and +1.5: mean 2.25, sample std 1.06.
    assert rows[2:] == [
        ['ce', '3 of 3', '72.67 ± 1.76', '71.67 ± 1.76', '72.50 74.50 71.00', '-0.33 ± 0.76', '1 of 3', '72.50'],
        ['kd', '3 of 3', '73.00 ± 1.00', '72.00 ± 1.00', '73.00 74.00 72.00', '—', '—', '73.33'],
        ['ijckd', '2 of 3', '75.75 ± 0.35', '74.75 ± 0.35', '76.00 75.50', '+2.25 ± 1.06', '2 of 2', '76.52']]
    assert (tmp_path / 'table.png').read_bytes().startswith(PNG_SIGNATURE)
    against_ce = run_cli(table, '--baseline', 'ce')  # ijckd − ce: +3.5, +1.0
    assert [cell.strip() for cell in against_ce.stdout.splitlines()[4].split('|')[6:8]] == ['+2.25 ± 1.77', '2 of 2']
    unknown = run_cli(table, '--baseline', 'simkd')
    assert (unknown.returncode, unknown.stdout) == (2, '')
    assert unknown.stderr == 'error: --baseline simkd is not a method of this table; its methods: ce, kd, ijckd.\n'


@pytest.mark.quick
def test_a_tables_rows_with_overrides_get_the_papers_number_of_their_setting(tmp_path):
    """configs/cifar_table.py:resnet32x4-resnet8x4,rows=table3's rows: each in its folder named
    by the row, each beside the paper's Table 3 figure of exactly its setting."""
    rows = {'ijckd': {}, 'ijckd@loss.alpha_ce=0.2': {'alpha_ce': 0.2},
            'ijckd@loss.alpha_lm=0+loss.beta_fm=1': {'alpha_lm': 0.0, 'beta_fm': 1.0}}
    os.makedirs(tmp_path / 'table')
    (tmp_path / 'table' / 'table.json').write_text(json.dumps({'methods': list(rows), 'seeds': [0], 'config': {}}))
    for row, changes in rows.items():
        write_run(tmp_path / 'table' / row / 'seed_0', loss={**IJCKD_DEFAULTS, **changes})
    methods, seeds, runs = report_runs.load_table(str(tmp_path / 'table'))
    lines = report_tables.summarize_table(methods, seeds, runs, 'ijckd')
    assert [(line.method, line.paper) for line in lines] == [
        ('ijckd', '76.52'), ('ijckd@loss.alpha_ce=0.2', '76.61'), ('ijckd@loss.alpha_lm=0+loss.beta_fm=1', '76.47')]


def write_summarized_run(directory, top1s, seed, num_epochs, recorded=True):
    """A KD run directory whose summary.json is what training writes (workdir.summarize) after an
    epoch of each top-1 in `top1s`; `recorded` False drops num_epochs, as summaries written
    before they recorded it."""
    from configs import cifar
    config = cifar.get_config('kd,resnet56-resnet20')
    config.seed, config.num_epochs = seed, num_epochs
    entries = [{'epoch': epoch, 'step': 10 * epoch, 'top1': top1, 'top5': 99.0}
               for epoch, top1 in enumerate(top1s, 1)]
    summary = summarize(entries, None, config)
    assert summary['num_epochs'] == num_epochs
    if not recorded:
        del summary['num_epochs']
    os.makedirs(directory)
    with open(os.path.join(directory, 'summary.json'), 'w') as file:
        json.dump(summary, file)
    with open(os.path.join(directory, 'history.json'), 'w') as file:
        json.dump(entries, file)


@pytest.mark.quick
def test_runs_of_different_lengths_never_share_a_row(tmp_path, capsys):
    """An 8-epoch and a 4-epoch run of one config are two rows (issue 36, item 1); a summary
    written before summaries recorded num_epochs groups by its evaluated epochs."""
    write_summarized_run(tmp_path / 'kd_int', [60.0] * 7 + [92.5], seed=0, num_epochs=8)
    write_summarized_run(tmp_path / 'table2' / 'kd' / 'seed_1', [70.0, 70.5, 69.0, 70.1], seed=1, num_epochs=4)
    write_summarized_run(tmp_path / 'older' / 'seed_2', [90.5] * 8, seed=2, num_epochs=8, recorded=False)
    write_summarized_run(tmp_path / 'older' / 'seed_0', [65.0] * 4, seed=0, num_epochs=4, recorded=False)
    status, out, err = report_in_process(capsys, str(tmp_path))
    assert status == 0 and err == '', err
    # By hand: 4 epochs, seeds 1 and 0: best 70.5 and 65.0, 67.75 ± 5.5 / √2 = 3.89; last 70.1
    # and 65.0, 67.55 ± 3.61. 8 epochs, seeds 0 and 2: best 92.5 and 90.5, 91.50 ± 1.41, and the
    # last the same. The paper's KD for this pair is RepDistiller's.
    assert split_cells(out.splitlines()[2:]) == [
        ['cifar100', 'kd', 'resnet56 → resnet20', '4', '2', '67.75 ± 3.89', '67.55 ± 3.61', '70.66'],
        ['cifar100', 'kd', 'resnet56 → resnet20', '8', '2', '91.50 ± 1.41', '91.50 ± 1.41', '70.66']]


@pytest.mark.quick
def test_a_run_not_finished_is_left_out_with_a_line(tmp_path, capsys):
    """A run with no summary.json yet, and one resumed for more epochs whose history.json has
    grown past its summary.json, are left out of the means, one line each (issue 36, item 1);
    in a comparison table they are not counted among its finished seeds."""
    write_run(tmp_path / 'runs' / 'a', seed=0, best_top1=70.0, epochs=4)
    write_run(tmp_path / 'runs' / 'b', seed=2, best_top1=74.0, epochs=4)
    resumed = write_run(tmp_path / 'runs' / 'c', seed=1, best_top1=90.0, epochs=4)
    history = json.loads((tmp_path / 'runs' / 'c' / 'history.json').read_text())
    (tmp_path / 'runs' / 'c' / 'history.json').write_text(json.dumps(
        history + [{**history[-1], 'epoch': epoch} for epoch in (5, 6)]))
    os.makedirs(tmp_path / 'runs' / 'd')
    (tmp_path / 'runs' / 'd' / 'run.json').write_text('{}')
    (tmp_path / 'runs' / 'd' / 'history.json').write_text(json.dumps(history[:2]))
    status, out, err = report_in_process(capsys, str(tmp_path / 'runs'))
    assert status == 0, err
    assert split_cells(out.splitlines()[2:]) == [
        ['cifar100', 'ijckd', 'resnet32x4 → resnet8x4', '4', '2', '72.00 ± 2.83', '75.50 ± 0.00', '76.52']]
    assert err.splitlines() == [
        f'warning: {resumed} is not finished, left out: resumed, its history.json has 6 epochs and its '
        'summary.json 4',
        f"warning: {tmp_path / 'runs' / 'd'} is not finished, left out: no summary.json yet (it is written when "
        'training ends)']
    table = write_table(tmp_path / 'table', {'ce': [72.5, 74.5], 'kd': [73.0, 74.0]})
    history = json.loads((tmp_path / 'table' / 'kd' / 'seed_1' / 'history.json').read_text())
    (tmp_path / 'table' / 'kd' / 'seed_1' / 'history.json').write_text(json.dumps(history + history[-1:]))
    kd = report_tables.summarize_table(*report_runs.load_table(table), 'kd')[1]
    assert (kd.seeds, kd.per_seed) == ('1 of 2', '73.00')


@pytest.mark.quick
def test_the_accuracy_plot_names_each_run_once_on_whole_epochs(tmp_path):
    """Three runs of seed 0 that the legend labelled alike ('ce, resnet20, seed 0') are told
    apart as the table's rows are, and the epoch axis has whole-number ticks only (issue 36,
    item 8)."""
    for name, epochs, rate in (('long', 20, 0.05), ('short', 4, 0.05), ('faster', 20, 0.1)):
        write_run(tmp_path / name, objective='ce', loss={'name': 'ce'}, connector=None, teacher=None,
                  student='resnet20', dataset='digits', epochs=epochs, config={'optimizer.learning_rate': rate})
    runs, _ = report_runs.load_runs([str(tmp_path)])
    figure = report_tables.plot_accuracy(runs, [report_runs.read_history(run.directory) for run in runs],
                                  str(tmp_path / 'accuracy.png'))
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        'ce, resnet20, 4 epochs, seed 0',
        'ce [optimizer.learning_rate=0.05], resnet20, 20 epochs, seed 0',
        'ce [optimizer.learning_rate=0.1], resnet20, 20 epochs, seed 0']
    ticks = figure.axes[0].get_xticks()
    assert len(ticks) > 2 and all(tick == round(tick) for tick in ticks), ticks
    assert (tmp_path / 'accuracy.png').read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.quick
def test_the_table_plot_joins_each_seed_across_methods(tmp_path):
    """A thin line per seed through its points, one per method at the seed's offset in the
    column, broken where a method has not finished the seed (issue 36, item 8)."""
    table = write_table(tmp_path / 'table', {'ce': [72.5, 74.5, 71.0], 'kd': [73.0, 74.0, 72.0],
                                             'ijckd': [76.0, 75.5, None]})
    figure = report_tables.plot_table(*report_runs.load_table(table), str(tmp_path / 'table.png'))
    drawn = {line.get_gid(): line.get_xydata() for line in figure.axes[0].lines}
    offset = 0.08  # plot_table's spacing of the seeds in a column
    expected = {'seed 0': ([-offset, 1 - offset, 2 - offset], [72.5, 73.0, 76.0]),
                'seed 1': ([0, 1, 2], [74.5, 74.0, 75.5]),
                'seed 2': ([offset, 1 + offset, 2 + offset], [71.0, 72.0, np.nan])}
    assert drawn.keys() == expected.keys()
    for seed, (x, y) in expected.items():  # to float64 rounding of the offsets; NaN where not finished
        np.testing.assert_allclose(drawn[seed], np.stack([x, y], 1), rtol=0, atol=1e-12)
    assert (tmp_path / 'table.png').read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.quick
def test_plotting_a_table_names_its_runs(tmp_path, capsys):
    """ijckd-plot on a comparison table's workdir says which run folders it holds (issue 36,
    item 8), and writes nothing; each of those it plots."""
    table = write_table(tmp_path / 'table', {'ce': [72.5, 74.5], 'kd': [73.0, 74.0], 'ijckd': [76.0, 75.5]})
    assert plot.main([table]) == 2
    runs = [os.path.join(table, method, f'seed_{seed}') for method in ('ce', 'ijckd', 'kd') for seed in (0, 1)]
    assert capsys.readouterr().err == (f"error: {table} is a comparison table; plot one of its runs: "
                                       f"{', '.join(runs[:4])}, … (6 in all).\n")
    assert not os.path.exists(os.path.join(table, 'theory.png'))
    assert plot.main([runs[0]]) == 0 and capsys.readouterr().out == (
        f"wrote {os.path.join(runs[0], 'theory.png')} (accuracy)\n")  # a run it names is plotted


@pytest.mark.quick
def test_dkds_published_numbers_are_keyed_by_the_beta_its_configs_train_with():
    """mdistiller's DKD figures carry their yaml's β per pair: the β configs/cifar.py:dkd trains
    each pair with, so that a DKD run finds its figure."""
    from configs import cifar
    from ijckd_jax.report.published import MDISTILLER_DKD_TOP1, PAPER_CIFAR100_TOP1, paper_key

    for pair, (top1, _) in MDISTILLER_DKD_TOP1.items():
        config = cifar.get_config(f'dkd,{pair}')
        changes = report_runs.setting_changes('dkd', config.loss.to_dict())
        assert PAPER_CIFAR100_TOP1[paper_key('dkd', *pair.split('-'), **dict(changes))] == top1

"""bench/gpu.py, the script a GPU loan runs once: its smoke run measures every item on this CPU
and writes the table and the raw numbers."""
import json
import os
import re
import subprocess
import sys

from conftest import REPOSITORY

ITEMS = ('environment', 'step', 'seeds', 'table', 'epoch', 'input')


def test_the_smoke_run_measures_every_item_and_writes_the_table(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPOSITORY, 'bench', 'gpu.py'), '--smoke',
                             '--out', str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / 'gpu.md').read_text()
    assert table in result.stdout
    rows = [line.split(' | ') for line in table.splitlines()[2:]]
    assert all(len(row) == 3 for row in rows), table
    rows = [(figure.removeprefix('| '), value.removesuffix(' |')) for figure, _, value in rows]
    # Nothing failed or ran out of time; only the CUDA graph's rows may lack a GPU.
    assert [row for row in rows if row[1].startswith(('failed', 'skipped'))] == []
    assert {figure for figure, value in rows if value == 'no CUDA'} == {
        figure for figure, _ in rows if 'CUDA graph' in figure}
    for item in ITEMS:
        values = [value for figure, value in rows if figure.startswith(f'{item}: ')]
        assert values, f'no row for {item}'
        if item != 'environment':
            assert any(re.search(r'\d', value) for value in values), (item, values)
    # The step's rows: ours at 1 and 2 steps per dispatch, and PyTorch's eager step.
    assert sum(figure.startswith('step: ours') and value.endswith('img/s)') for figure, value in rows) == 2
    assert sum(figure.startswith('step: PyTorch eager') and value.endswith('img/s)') for figure, value in rows) == 1
    raw = json.loads((tmp_path / 'gpu.json').read_text())
    assert raw['smoke'] and [row['figure'] for row in raw['rows']] == [figure for figure, _ in rows]
    assert all(row['seconds_per_step'] > 0 for row in raw['rows'] if 'seconds_per_step' in row)

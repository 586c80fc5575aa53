"""The runs one process trains together, and each run's part of what they share.

A run is one model trained with one seed, in a workdir of its own: one row of the table (a
method with its settings) and one seed. The state and the metrics are {row: ...}, stacked over
seeds where several train together; a run's `position` is its seed's place in that stack, None
where there is no stack (one seed).
"""
import re
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp


class Run(NamedTuple):
    """One run: its config (config.seed its seed), its workdir, its row and seed position; with
    a writer and checkpoints once started."""
    config: Any
    workdir: str
    row: str
    position: Optional[int] = None
    writer: Any = None
    manager: Any = None


def directory_name(row):
    """A table row's folder in the table's workdir: the row, e.g. 'ijckd@loss.alpha_ce=0.2', with
    every character a file system may refuse as '_'."""
    return re.sub(r'[^A-Za-z0-9._@=+-]', '_', row)


def label(run, runs):
    """How logs name a run among `runs`: 'ijckd seed 3', 'seed 3', 'ijckd', or '' for a run alone."""
    row = run.row if len({other.row for other in runs}) > 1 else ''
    seed = '' if run.position is None else f'seed {run.config.seed}'
    return ' '.join(part for part in (row, seed) if part)


def select(tree, run):
    """A run's part of a tree keyed by row (the state, metrics, sums): its row's, its seed's in
    a stack over seeds."""
    tree = tree[run.row]
    return tree if run.position is None else seed_part(tree, run.position)


@jax.jit
def seed_part(tree, position):
    """Every leaf's entry `position` of a stack over seeds: one program for the whole tree
    (compiled once per tree, for every position), where indexing leaf by leaf dispatches a
    program per leaf (measured: a state of 120 leaves on 4 CPU devices, 0.16 s a run, 0.005 s
    as one program)."""
    return jax.tree.map(lambda leaf: leaf[position], tree)


def of_run(values, run):
    """A run's {name: float} from a step's or an evaluation's {row: {name: array}}."""
    return {name: float(value) for name, value in select(values, run).items()}


def listing(numbers, runs, digits):
    """One number per run as a log shows them: '45.10/45.30' over seeds (in seed_order's
    order); 'ce 45.10/45.30, kd 46.00/46.20' over a table's rows."""
    groups = {}
    for number, run in zip(numbers, runs):
        groups.setdefault(run.row, []).append(f'{number:.{digits}f}')
    named = len(groups) > 1
    return ', '.join(' '.join(([row] if named else []) + ['/'.join(group)]) for row, group in groups.items())


def seed_order(runs):
    """' (seeds 0/3)': which seed each number of a listing is, for runs over several seeds; ''
    for one."""
    seeds = list(dict.fromkeys(run.config.seed for run in runs if run.position is not None))
    return f" (seeds {'/'.join(map(str, seeds))})" if len(seeds) > 1 else ''


def assemble(parts, runs):
    """The state keyed by row from the runs' parts (select's inverse), stacked over seeds."""
    by_row = {}
    for part, run in zip(parts, runs):
        by_row.setdefault(run.row, []).append((run.position, part))

    def stack(items):
        if items[0][0] is None:
            return items[0][1]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *[part for _, part in items])
    return {row: stack(items) for row, items in by_row.items()}

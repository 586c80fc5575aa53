"""The runs one process trains together, and each run's part of what they share.

A run is one model trained with one seed, in a workdir of its own. Its index says where it
lies in the experiment's state and metrics: None for a run alone; the seed's position for
config.seeds (the state stacked over seeds); (method, position or None) in a comparison table,
whose state is one per method and whose metrics are named 'METHOD/NAME'.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Run(NamedTuple):
    """One run: its config (config.seed its seed), its workdir and its index; with a writer
    and checkpoints once started."""
    config: Any
    workdir: str
    index: Any
    writer: Any = None
    manager: Any = None


def method_of(index):
    return index[0] if isinstance(index, tuple) else None


def position_of(index):
    return index[1] if isinstance(index, tuple) else index


def label(run):
    """How logs name a run among others: 'ijckd seed 3', 'seed 3', or '' for a run alone."""
    method, position = method_of(run.index), position_of(run.index)
    seed = '' if position is None else f'seed {run.config.seed}'
    return ' '.join(part for part in (method, seed) if part)


def select(tree, index):
    """A run's part of the experiment's state: its method's, its seed's in a stack over seeds."""
    method, position = method_of(index), position_of(index)
    tree = tree if method is None else tree[method]
    return tree if position is None else jax.tree.map(lambda leaf: leaf[position], tree)


def values_of(values, index):
    """A run's metrics from a step's or an evaluation's {name: array}."""
    method, position = method_of(index), position_of(index)
    if method is not None:
        prefix = f'{method}/'
        values = {name[len(prefix):]: value for name, value in values.items() if name.startswith(prefix)}
    return values if position is None else {name: value[position] for name, value in values.items()}


def of_run(values, index):
    """values_of as {name: float}."""
    return {name: float(value) for name, value in values_of(values, index).items()}


def listing(numbers, runs, digits):
    """One number per run as a log shows them: '45.10/45.30' over seeds (in seed_order's
    order); 'ce 45.10/45.30, kd 46.00/46.20' over a table's methods."""
    groups = {}
    for number, run in zip(numbers, runs):
        groups.setdefault(method_of(run.index), []).append(f'{number:.{digits}f}')
    return ', '.join(' '.join(([method] if method else []) + ['/'.join(group)]) for method, group in groups.items())


def seed_order(runs):
    """' (seeds 0/3)': which seed each number of a listing is, for runs over several seeds; ''
    for one."""
    seeds = list(dict.fromkeys(run.config.seed for run in runs if position_of(run.index) is not None))
    return f" (seeds {'/'.join(map(str, seeds))})" if len(seeds) > 1 else ''


def assemble(parts, indices):
    """The experiment's state from the runs' parts (select's inverse): stacked over seeds, one
    per method for a table."""
    by_method = {}
    for part, index in zip(parts, indices):
        by_method.setdefault(method_of(index), []).append((position_of(index), part))

    def stack(items):
        if items[0][0] is None:
            return items[0][1]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *[part for _, part in items])
    if None in by_method:
        return stack(by_method[None])
    return {method: stack(items) for method, items in by_method.items()}

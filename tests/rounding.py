"""How far rounding alone moves a run: the yardstick of the tests that compare two orders of
the same float32 computation (seeds vmapped or alone, a scan or single steps, four devices
or one, two processes or one).

Two orders of a computation differ by about one rounding in each operation. On the tests'
small runs (8 images a step, BatchNorm over them) such differences do not stay small: a
change of one unit in the last place of each initial weight moves weights by up to 1e-4 of
their norm after 3 steps and some BatchNorm biases by 3% (gradients that cancel to rounding
noise, ReLUs that switch), by amounts that depend on the processor's rounding and on the
teacher. So a fixed tolerance either fails on another processor or admits real errors.
Instead each test measures, where it runs, how far its reference run moves when every
initial parameter is moved by one unit in the last place (`one_ulp_away`, DRAWS times with
random signs), and requires the other order to stay within FACTOR times that, tensor by
tensor and metric by metric. FACTOR: the other orders measured at most 0.92 (four devices;
1.24 on an AVX-512 EPYC), 1.05 (two processes), 1.36 (a scan) and 3.0 (seeds vmapped, and a
comparison table's methods with the seeds in turn; each time SRRL's classifier cosine at
epoch 1, a value near 1 that moved 3 float32 units in the last place where the perturbation
moved it 1) times the perturbation here (AMD EPYC Zen 3, float32), so 10 leaves room for a processor that rounds
differently, while a real difference (the step not taken, a step missing, another seed's
run) measured 1,900 to 16,000,000 times it: each test also checks that its comparison fails
on one.

Every comparison spans several steps (or epochs), not one. A pre-activation within a few
units of zero (measured: 2e-7 and 3.6e-7 among a step's ~600,000 on an AVX-512 EPYC) can be
flipped across a ReLU by another summation order, and the flip moves that step's update of
the layers before it by up to 0.7%; the perturbed runs seldom flip it, since a relative
change of the parameters barely moves a value near zero (1 draw in 8 did). After one step,
four devices against one measured 4,900 times the two draws' yardstick there; after two and
three steps, whose perturbed runs have diverged by more than any one flip, 1.45 and 1.24.
"""
import jax
import numpy as np
from flax import traverse_util

FACTOR = 10
DRAWS = 2
UNIT_ROUNDOFF = 2.0 ** -24  # float32


def one_ulp_away(tree, draw):
    """Each float leaf moved to its next float32 up or down (random signs, seeded by `draw`),
    on the host: no program to compile. The leaves are replicated arrays (parameters), so any
    local copy is the whole value, and every process draws the same signs."""
    signs = np.random.default_rng(draw)

    def move(leaf):
        assert leaf.sharding.is_fully_replicated, leaf.sharding
        value = np.asarray(leaf.addressable_data(0))
        toward = np.where(signs.random(value.shape) < 0.5, np.inf, -np.inf).astype(value.dtype)
        moved = np.nextafter(value, toward)
        return jax.make_array_from_callback(leaf.shape, leaf.sharding, lambda index: moved[index])
    return jax.tree.map(move, tree)


def flat(tree):
    """{'a/b': numpy array} of a nested dict of arrays or numbers."""
    return {name: np.asarray(value, np.float64) for name, value in traverse_util.flatten_dict(tree, sep='/').items()}


def beyond_rounding(actual, expected, perturbed):
    """The leaves of `actual` (nested dicts) farther from `expected` than FACTOR times the
    farthest of the `perturbed` runs (plus 8 roundings of the leaf's scale, for leaves that the
    perturbation leaves unchanged), each with both distances; [] when every leaf is within.

    A leaf's scale is its norm; a cosine's is 1: it is a dot product of unit vectors, rounded
    relative to them, not to its value. (SRRL's classifier cosine, 0.0045 after 2 steps of
    α = 0.5, came 2.8e-9 from the run alone's, computed over the seeds stacked: 6 of its units
    in the last place, where the perturbed runs left it unchanged.)"""
    actual, expected, perturbed = flat(actual), flat(expected), [flat(tree) for tree in perturbed]
    violations = []
    for name, value in expected.items():
        distance = np.linalg.norm(np.ravel(actual[name] - value))
        rounding = max(np.linalg.norm(np.ravel(run[name] - value)) for run in perturbed)
        scale = max(np.linalg.norm(np.ravel(value)), 1.0) if name.endswith('cosine') else np.linalg.norm(
            np.ravel(value))
        if distance > FACTOR * rounding + 8 * UNIT_ROUNDOFF * scale:
            violations.append(f'{name}: {distance:.3g} away, one ulp moves it {rounding:.3g}')
    return violations

"""The device mesh: the batch is sharded over the axis 'data' and the state replicated, so the
same jitted step runs on one CPU, the GPUs of a host, or many hosts. Under this global jit
BatchNorm statistics are those of the global batch."""
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec


class Mesh:
    """The device mesh and how arrays are placed on it."""

    def __init__(self, devices=None):
        devices = np.asarray(devices if devices is not None else jax.devices())
        self.mesh = jax.sharding.Mesh(devices, ('data',))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.sharded = NamedSharding(self.mesh, PartitionSpec('data'))
        # XLA's CPU runtime (jaxlib 0.10.2) can deadlock when programs with collectives are
        # queued one behind another on several CPU devices of one process: three device threads
        # join an all-reduce, the fourth never arrives, and 40 s later XLA aborts the process
        # ("rendezvous.cc: Termination timeout ... Exiting to ensure a consistent program
        # state"). A chain of 480 tiny train-like steps on 4 CPU devices deadlocked 2 runs out of
        # 2, and none of 5 where each step was waited for (tests/test_train.py reproduces it).
        local = self.mesh.local_devices
        self.waits = len(local) > 1 and local[0].platform == 'cpu'

    def __eq__(self, other):
        return isinstance(other, Mesh) and self.mesh == other.mesh

    def __hash__(self):
        return hash(self.mesh)

    def settled(self, tree):
        """`tree`, computed, where the mesh is several CPU devices (see `waits`); elsewhere at
        once, so that the host dispatches ahead of the accelerators."""
        return jax.block_until_ready(tree) if self.waits else tree

    def replicate(self, tree):
        """Host arrays, equal on every process, as arrays replicated over the mesh."""
        return jax.tree.map(lambda value: jax.make_array_from_callback(
            np.shape(value), self.replicated, lambda index: np.asarray(value)[index]), tree)

    def shard(self, *local_arrays):
        """This process's part of a global batch → global arrays sharded over 'data'."""
        return [jax.make_array_from_process_local_data(self.sharded, array) for array in local_arrays]

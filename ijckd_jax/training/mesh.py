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

    def __eq__(self, other):
        return isinstance(other, Mesh) and self.mesh == other.mesh

    def __hash__(self):
        return hash(self.mesh)

    def replicate(self, tree):
        """Host arrays, equal on every process, as arrays replicated over the mesh."""
        return jax.tree.map(lambda value: jax.make_array_from_callback(
            np.shape(value), self.replicated, lambda index: np.asarray(value)[index]), tree)

    def shard(self, *local_arrays):
        """This process's part of a global batch → global arrays sharded over 'data'."""
        return [jax.make_array_from_process_local_data(self.sharded, array) for array in local_arrays]

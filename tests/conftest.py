"""Test-wide settings: four CPU devices, so that every jitted step runs sharded as on a GPU
host, and fast compiles, since the compiled code's speed does not matter here."""
import jax

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_disable_most_optimizations', True)

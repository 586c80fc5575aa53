"""Test-wide settings: compile fast, since the compiled code's speed does not matter here."""
import jax

jax.config.update('jax_disable_most_optimizations', True)

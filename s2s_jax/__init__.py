"""s2s_jax: SOUND2SYNTH in JAX/Flax, from any sound to a Dexed (DX7) preset."""

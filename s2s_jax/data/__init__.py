"""The `dexed_presets` dataset: what it holds, how it is built and read."""

"""Everything about the DX7 and Dexed: parameters, voices and sysex, renderers, presets."""

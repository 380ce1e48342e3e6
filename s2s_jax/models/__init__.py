"""The SOUND2SYNTH network: PDC layer, backbones, grouped head."""

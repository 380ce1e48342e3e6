"""Audio features (one JAX featuriser for dataset and inference) and MFCCD."""

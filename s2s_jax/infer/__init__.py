"""The inference core, shared by matching, serving, evaluation and the benchmarks.

A model loaded from its training workdir (`workdir`), a clip turned into what the network
reads (`inputs`), logits into classes and probabilities (`logits`), several models applied to
the same clips (`predictor`), classes into audio (`rendering`) and audio scored against a target
by MFCCD (`scoring`). Nothing here imports `s2s_jax.train`, so matching loads neither the
optimiser nor the dataset readers.
"""

"""Training: input pipeline, losses, train_and_evaluate."""

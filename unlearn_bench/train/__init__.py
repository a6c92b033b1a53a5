"""Training: the model-producing stages, the optimisation loop, batches and snapshots.

Also checkpointing, controls against excessive unlearning, LoRA and multi-process helpers.
"""

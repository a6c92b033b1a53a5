"""General utility through lm-evaluation-harness: a run's ``utility:`` tasks on every model."""

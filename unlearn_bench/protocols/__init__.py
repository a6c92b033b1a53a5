"""Multi-run drivers over the runner: MUSE scalability and sustainability, sweeps."""

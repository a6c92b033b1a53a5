"""unlearn-bench: a benchmark harness for large-language-model unlearning."""

__version__ = "0.1.0"

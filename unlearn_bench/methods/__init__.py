"""Unlearning methods, one file each; registered lazily so listing them never imports torch."""

from unlearn_bench.methods.base import METHODS, Method, TokenBatch, UnlearnBatch

__all__ = ["METHODS", "Method", "TokenBatch", "UnlearnBatch"]

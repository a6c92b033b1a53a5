"""Robustness probes: named, versioned transformations of a model or of its prompts.

A probe (relearning, weight quantization, paraphrased or prefixed prompts, sampled decoding)
is followed by the task's ordinary evaluation of its probe eval sets, and its result is an
ordinary run record labelled ``<subject>@<probe>`` (e.g. ``npo@int4``) in the run's group.
"""

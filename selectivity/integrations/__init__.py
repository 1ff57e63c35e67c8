"""The selectivity regularizer inside other training frameworks.

`lightning` (PyTorch Lightning callback) and `huggingface` (transformers Trainer callback and
Trainer subclass) each import their framework, so import the submodule you need; neither
framework is a dependency of the core package (extras `lightning`, `hf`).
"""

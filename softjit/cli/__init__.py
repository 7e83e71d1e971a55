"""``python -m softjit``: the self-check, the benchmark and ``warm``."""

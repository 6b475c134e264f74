"""Seeded comparisons of training recipes, run as one ``tools/train.py`` subprocess per
(variant, seed), and their reports (``tools/compare_kdml.py``, ``tools/kdml_before_after.py``,
``tools/reproduce_fashion_mnist.py``)."""

"""Slow, obviously-correct twins of riskcap's fast kernels, kept out of the product.

Each module mirrors the riskcap module whose kernels it checks (``reference.features`` for
:mod:`riskcap.features`, and so on); tests compare fast and slow on the same inputs, often
with hypothesis, and benchmarks time the fast path against them. They may read the
product's private helpers and parsed objects, but never its kernels. ``pyproject.toml`` puts
``tests/`` on pytest's ``pythonpath``, so ``import reference.features`` works from
``tests/`` and ``benchmarks/`` alike.
"""

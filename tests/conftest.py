"""Shared test configuration: Hypothesis profiles and small fixtures.

Profiles (select with the environment variable ``HYPOTHESIS_PROFILE``):

* ``ci`` (default): deterministic (``derandomize=True``), no deadline, 50 examples;
  the same examples on every run and machine, so a red test is reproducible.
* ``dev``: random exploration with more examples, for hunting counter-examples locally.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=50,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    derandomize=False,
    deadline=None,
    max_examples=200,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test (never the global numpy state)."""
    return np.random.default_rng(20180509)  # arXiv:1805.09545's month, a fixed seed

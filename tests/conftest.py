"""Shared test configuration: hypothesis profiles, the --runslow flag, and backend parametrisation.

HYPOTHESIS_PROFILE=ci (the default of ./run.sh test) keeps the suite fast on two cores;
HYPOTHESIS_PROFILE=thorough draws at least ten times as many examples.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=12, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=5, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with ./run.sh test --slow (pytest --runslow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)

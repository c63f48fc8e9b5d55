"""Fixtures shared by the ops tests."""
import pytest

from ops import functions


@pytest.fixture
def fresh_backends(monkeypatch):
    """Forget cached backend choices before and after the test; no env var override."""
    monkeypatch.delenv(functions.ENV_VAR, raising=False)
    functions.reset_backend_cache()
    yield
    functions.reset_backend_cache()

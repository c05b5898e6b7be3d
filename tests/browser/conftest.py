"""The browser test's server runs on the suite's database backend, like tests/integration."""

from tests.integration.test_serve import fresh_database_url  # noqa: F401 (a fixture)

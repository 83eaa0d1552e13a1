"""The grocery study's tests. A package, so that its conftest.py is imported as tests.conftest and
never replaces the product tests' `conftest` module (both folders run in one pytest session)."""

"""The adversarial tier: generated, differential and fault-injection tests (see conftest.py)."""

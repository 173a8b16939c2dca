"""Configuration, service bootstrap (Redis, Ray), the ``anonreid`` CLI and benchmarks."""

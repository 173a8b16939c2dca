"""Package data (found by setup.py through this file)."""

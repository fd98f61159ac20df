"""Tests of the REST-compat shim (one module per dialect)."""

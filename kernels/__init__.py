"""Sequence operators, installed as pytest_goni.kernels."""

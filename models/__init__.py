"""Model backends, installed as pytest_goni.models."""

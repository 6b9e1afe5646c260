"""Built-in measurement kinds, one module per kind.

A module registers its kind when imported; a run imports only the kinds its specs use, by the
names in ``pytest_goni.registry.BUILTIN_NAMES`` (add a new kind's name and module there).
"""

"""The client's version: the one place it is written (pyproject.toml reads it from here;
test_keytrans.py checks it is meson's project version)."""
__version__ = "0.1.0"

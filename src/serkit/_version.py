"""serkit's version, in a module of its own so that any part of serkit can read it without importing the package API."""

__version__ = "0.1.0"

"""The ``ferry`` command: a thin shell over the library."""

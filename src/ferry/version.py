"""The version of ferry, in one place (read by the package, the specs it writes and the CLI)."""

__version__ = "0.1.0"

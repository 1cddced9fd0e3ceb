"""Helpers for testing ferry (and code built on it) against real components."""

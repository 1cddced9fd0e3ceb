"""The control plane: runs compiled workflows by moving metadata (literals) between tasks."""

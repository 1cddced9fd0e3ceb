"""The task runtime (data plane): what runs inside a pod, from inputs.pb to outputs.pb."""

from ferry.runtime.execute import execute, run_task

__all__ = ["execute", "run_task"]

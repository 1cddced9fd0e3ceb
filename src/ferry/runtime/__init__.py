"""The task runtime (data plane): what runs inside a pod, from inputs.pb to outputs.pb."""

from ferry.runtime.execute import ERROR, OUTPUTS, execute, run_task

__all__ = ["ERROR", "OUTPUTS", "execute", "run_task"]

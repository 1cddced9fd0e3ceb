"""The authoring side: @task, @workflow, promises, conditionals and map tasks."""

"""The OpenAPI 3.1 document of ferry's HTTP API (/api/v1/openapi.json); docs/api.md describes the same in prose."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {str(code): {"$ref": "#/components/responses/Error"} for code in (400, 401, 403, 404, 405, 409, 413, 415, 421, 502)}


def _op(summary: str, response: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, status: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {status: _json(response, summary), **ERRORS}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _param(name: str, where: str, description: str, schema: dict[str, Any] | None = None,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "description": description,
            "schema": schema or {"type": "string"}}


EXECUTION_ID = _param("id", "path", "An execution id (or a unique prefix of one).")
KIND = _param("kind", "path", "Which registered specs.", {"type": "string", "enum": ["tasks", "workflows", "launchplans"]})

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ferry server API",
        "version": "1",
        "description": "Launch, watch and inspect executions of registered ferry workflows. Every write takes a JSON "
                       "body (Content-Type: application/json). With a token set, send 'Authorization: Bearer TOKEN'. "
                       "Errors are {\"error\": message}. Times are Unix seconds.",
    },
    "servers": [{"url": "/"}],
    "components": {
        "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        "responses": {"Error": _json(_ref("Error"), "What was wrong, and how to fix it.")},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "MetaValue": {
                "type": "object", "description": "A meta value as the engine holds it; references are never read.",
                "required": ["text", "kind"],
                "properties": {
                    "text": {"type": "string", "description": "one line, as `ferry executions show` prints it"},
                    "kind": {"type": "string", "enum": ["int", "float", "str", "bool", "datetime", "duration", "none",
                                                        "list", "map", "file", "directory", "dataframe", "binary",
                                                        "struct", "offloaded", "empty"]},
                    "value": {"description": "primitives (ints past 2**53 and non-finite floats as strings)"},
                    "items": {"description": "list: an array of MetaValue; map: an object of MetaValue"},
                    "uri": {"type": "string"}, "format": {"type": "string"}, "size": {"type": ["integer", "null"]},
                    "columns": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "type": {"type": "string"}}}},
                    "variant": {"type": "string", "description": "the union variant's tag"},
                },
            },
            "Execution": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"}, "workflow": {"type": "string"}, "launch_plan": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "aborted"]},
                    "queued": {"type": ["number", "null"]}, "started": {"type": "number"},
                    "ended": {"type": ["number", "null"]}, "duration": {"type": ["number", "null"]},
                    "executor": {"type": "string"}, "raw_output_prefix": {"type": "string"},
                    "raw_output_source": {"type": "string",
                                          "enum": ["execution", "launch plan", "registration", "settings"]},
                    "error": {"type": ["string", "null"]}, "owner": {"type": ["string", "null"]},
                    "claims": {"type": ["integer", "null"]}, "abort_requested": {"type": "boolean"},
                },
            },
            "Attempt": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"}, "attempt": {"type": "integer", "description": "1 is the first"},
                    "kind": {"type": "string", "enum": ["task", "workflow", "branch", "map"]},
                    "label": {"type": "string"}, "status": {"type": "string"},
                    "started": {"type": "number"}, "ended": {"type": ["number", "null"]},
                    "duration": {"type": ["number", "null"]}, "worker": {"type": ["string", "null"]},
                    "error": {"description": "the headline in listings; in a node's detail the error document "
                                             "{message, code, origin, retryable}"},
                    "inputs": {"type": "object", "additionalProperties": _ref("MetaValue")},
                    "outputs": {"type": "object", "additionalProperties": _ref("MetaValue")},
                    "logs": {"type": ["string", "null"], "description": "stdout and stderr (the last MiB)"},
                },
            },
            "ExecutionDetail": {"allOf": [_ref("Execution"), {"type": "object", "properties": {
                "inputs": {"type": "object", "additionalProperties": _ref("MetaValue")},
                "outputs": {"type": ["object", "null"], "additionalProperties": _ref("MetaValue")},
                "nodes": {"type": "array", "items": _ref("Attempt")},
                "graph": {"type": "object", "properties": {"workflow": {"type": "string"}, "nodes": {
                    "type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "label": {"type": "string"}, "kind": {"type": "string"},
                        "upstream": {"type": "array", "items": {"type": "string"}},
                        "status": {"type": "string"},
                        "elements": {"type": "object", "description": "map nodes: element count by status"}}}}}},
            }}]},
            "Launch": {
                "type": "object", "required": ["launch_plan"],
                "properties": {
                    "launch_plan": {"type": "string", "description": "NAME or NAME@VERSION (newest version by default)"},
                    "version": {"type": "string"},
                    "inputs": {"type": "object", "description": "typed JSON by the launch plan's types: numbers, "
                               "strings, booleans, ISO 8601 datetimes, durations in seconds, arrays, objects, and "
                               "File / Directory / DataFrame as a URI string or {uri, format} of data already in a "
                               "store"},
                    "raw_output_prefix": {"type": "string", "description": "where this execution's offloaded data goes"},
                },
            },
            "Type": {"type": "object", "properties": {
                "text": {"type": "string"},
                "form": {"type": "string", "enum": ["int", "float", "str", "bool", "datetime", "duration", "none",
                                                    "binary", "json", "uri", "enum"]},
                "optional": {"type": "boolean"}, "values": {"type": "array", "items": {"type": "string"}},
                "reference": {"type": "string", "enum": ["file", "directory", "dataframe"]}}},
        },
    },
    "security": [{"token": []}, {}],
    "paths": {
        "/api/v1/executions": {
            "get": _op("List executions, newest first", {"type": "object", "properties": {
                "executions": {"type": "array", "items": _ref("Execution")},
                "next": {"type": ["string", "null"], "description": "cursor of the next page"}}},
                params=[_param("status", "query", "queued, running, succeeded, failed or aborted"),
                        _param("workflow", "query", "a workflow's name"),
                        _param("since", "query", "started at or after (Unix seconds or ISO 8601)"),
                        _param("until", "query", "started before (Unix seconds or ISO 8601)"),
                        _param("limit", "query", "page size, 1 to 500 (50)", {"type": "integer"}),
                        _param("cursor", "query", "the previous page's next")]),
            "post": _op("Launch: queue an execution of a launch plan", _ref("Execution"), body=_ref("Launch"),
                        status="201"),
        },
        "/api/v1/executions/{id}": {"get": _op(
            "An execution with its inputs, outputs, node attempts and graph", _ref("ExecutionDetail"),
            params=[EXECUTION_ID, _param("values", "query", "true: each task attempt's inputs and outputs too")])},
        "/api/v1/executions/{id}/nodes/{path}": {"get": _op(
            "One node's attempts: meta values, error document, logs", {"type": "object", "properties": {
                "attempts": {"type": "array", "items": _ref("Attempt")}}},
            params=[EXECUTION_ID, _param("path", "path", "the node's path, e.g. n0, n2-17, n3/n0"),
                    _param("attempt", "query", "only this attempt (1 is the first)", {"type": "integer"})])},
        "/api/v1/executions/{id}/logs": {"get": _op(
            "What task attempts printed", {"type": "object", "properties": {"attempts": {"type": "array", "items": {
                "type": "object", "properties": {"path": {"type": "string"}, "attempt": {"type": "integer"},
                                                 "logs": {"type": "string"}}}}}},
            params=[EXECUTION_ID, _param("node", "query", "a node path"),
                    _param("attempt", "query", "an attempt (1 is the first)", {"type": "integer"})])},
        "/api/v1/executions/{id}/abort": {"post": _op("Abort a queued or running execution", {"type": "object"},
                                                      params=[EXECUTION_ID], body={"type": "object"})},
        "/api/v1/executions/{id}/resume": {"post": _op(
            "Queue a failed, aborted or stopped execution again; finished nodes are not run again", _ref("Execution"),
            params=[EXECUTION_ID], body={"type": "object", "properties": {"force": {
                "type": "boolean", "description": "take over one a `ferry run` process left running"}}})},
        "/api/v1/executions/{id}/relaunch": {"post": _op(
            "A new execution with the same launch plan version and inputs", _ref("Execution"), params=[EXECUTION_ID],
            body={"type": "object", "properties": {"raw_output_prefix": {"type": "string"}}}, status="201")},
        "/api/v1/registrations": {"post": _op(
            "Register serialized flyteidl admin specs", {"type": "object", "properties": {
                "registered": {"type": "array", "items": {"type": "string"}},
                "unchanged": {"type": "array", "items": {"type": "string"}}}},
            body={"type": "object", "properties": {
                "tasks": {"type": "array", "items": {"type": "string", "description": "base64 TaskSpec"}},
                "workflows": {"type": "array", "items": {"type": "string", "description": "base64 WorkflowSpec"}},
                "launch_plans": {"type": "array", "items": {"type": "string", "description": "base64 LaunchPlan"}},
                "raw_output_prefix": {"type": "string"}}}, status="201")},
        "/api/v1/{kind}": {"get": _op("Registered specs: newest version, versions, interface", {
            "type": "array", "items": {"type": "object"}}, params=[KIND])},
        "/api/v1/{kind}/{name}": {"get": _op(
            "One registered spec: typed interface with descriptions, defaults, versions", {"type": "object",
                "properties": {"inputs": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                    "type": _ref("Type"), "description": {"type": "string"}, "required": {"type": "boolean"},
                    "default": _ref("MetaValue")}}}}},
            params=[KIND, _param("name", "path", "its name"), _param("version", "query", "a version (newest if not given)")])},
        "/api/v1/health": {"get": _op("The server is up; its name in the records and what it runs", {"type": "object"})},
        "/api/v1/openapi.json": {"get": _op("This document", {"type": "object"})},
    },
}

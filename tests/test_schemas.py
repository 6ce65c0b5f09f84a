"""Tool docs and their JSON Schema form as the environment offers them (``toolenv.formats.tool_specs``,
the one conversion): 128 tools, valid schemas, ground truth conforms."""

from __future__ import annotations

import jsonschema

from envs import all_backend_classes
from envs.base import json_schema
from toolenv.data import load_tasks
from toolenv.formats import tool_specs

EXPECTED_TOOLS = {
    "GorillaFileSystem": 18,
    "MathAPI": 17,
    "MessageAPI": 10,
    "TwitterAPI": 14,
    "TicketAPI": 9,
    "TradingBot": 20,
    "TravelAPI": 18,
    "VehicleControlAPI": 22,
}
GORILLA_ONLY = {"dict", "float", "tuple", "any"}


def _types(schema: object) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        if isinstance(schema.get("type"), str):
            found.add(schema["type"])
        for key in ("properties",):
            for sub in schema.get(key, {}).values():
                found |= _types(sub)
        for key in ("items", "additionalProperties"):
            found |= _types(schema.get(key))
    return found


def test_128_tools_with_valid_json_schemas() -> None:
    classes = all_backend_classes()
    assert {name: len(cls.tool_names()) for name, cls in classes.items()} == EXPECTED_TOOLS
    names = [n for cls in classes.values() for n in cls.tool_names()]
    assert len(names) == len(set(names)) == 128
    for cls in classes.values():
        for tool in (spec.schema for spec in tool_specs(cls.tool_docs())):
            jsonschema.Draft202012Validator.check_schema(tool["parameters"])
            assert tool["parameters"]["type"] == "object"
            assert not _types(tool["parameters"]) & GORILLA_ONLY
            assert callable(getattr(cls, tool["name"]))


def test_type_mapping() -> None:
    gorilla = {
        "type": "dict",
        "properties": {
            "a": {"type": "float"},
            "b": {"type": "tuple", "items": {"type": "float"}},
            "c": {"type": "any", "description": "x"},
            "d": {"type": "dict", "properties": {"type": {"type": "string"}}},
        },
        "required": ["a"],
    }
    assert json_schema(gorilla) == {
        "type": "object",
        "properties": {
            "a": {"type": "number"},
            "b": {"type": "array", "items": {"type": "number"}},
            "c": {"description": "x"},
            "d": {"type": "object", "properties": {"type": {"type": "string"}}},
        },
        "required": ["a"],
    }


def test_ground_truth_keyword_arguments_conform_to_the_schemas() -> None:
    """Every keyword argument in the ground truth validates against our JSON Schemas, except one
    known data defect: a ticket id given as the string 'ticket_001' where the doc says integer."""
    schemas = {
        t["name"]: jsonschema.Draft202012Validator(t["parameters"])
        for cls in all_backend_classes().values()
        for t in (s.schema for s in tool_specs(cls.tool_docs()))
    }
    checked, violations = 0, set()
    for task in load_tasks():
        for turn in task.ground_truth_calls:
            for call in turn:
                if call.args:  # positional ground truth cannot be validated by name
                    continue
                for error in schemas[call.name].iter_errors(dict(call.kwargs)):
                    violations.add((call.name, "/".join(map(str, error.path)), error.instance))
                checked += 1
    assert checked > 4000
    assert violations == {("close_ticket", "ticket_id", "ticket_001")}

"""schema.json and TOOL.md are generated from the registry; the committed files must match it."""

from __future__ import annotations

import json
from pathlib import Path

from contextd_mcp.container import Container
from contextd_mcp.docs import schema_document, tool_markdown

ROOT = Path(__file__).parents[1]


def test_committed_docs_match_the_registry(container: Container) -> None:
    tools = container.tools()
    assert json.loads((ROOT / "schema.json").read_text()) == schema_document(tools), "run `contextd-mcp docs`"
    assert (ROOT / "TOOL.md").read_text() == tool_markdown(tools) + "\n", "run `contextd-mcp docs`"


def test_every_tool_documents_its_limits(container: Container) -> None:
    document = schema_document(container.tools())
    for tool in document["tools"]:
        for name, prop in tool["input_schema"]["properties"].items():
            options = prop.get("anyOf", [prop])
            strings = [o for o in options if o.get("type") == "string"]
            for option in strings:
                assert "maxLength" in option or "enum" in option, f"{tool['name']}.{name} has no size cap"
            arrays = [o for o in options if o.get("type") == "array"]
            for option in arrays:
                assert "maxItems" in option, f"{tool['name']}.{name} has no count cap"

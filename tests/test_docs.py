"""schema.json and TOOL.md are generated from the registry; the committed files must match it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from contextd_mcp.container import Container
from contextd_mcp.docs import schema_document, tool_markdown
from tests.helpers import env_for

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


def test_docs_render_without_a_store_or_a_model(tmp_path: Path) -> None:
    """`contextd-mcp docs` reads the tools as declared: with no model to load and a data
    directory that cannot exist, it still writes the same files, and never imports the store's
    or the model's engine (before: it built the whole container, ~5 s and a model load)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    probe = (
        "import sys\n"
        "from contextd_mcp.cli import main\n"
        f"code = main(['docs', '--out', {str(tmp_path)!r}])\n"
        "heavy = sorted(m for m in ('qdrant_edge', 'qdrant_client', 'onnxruntime', 'fastembed') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    env = env_for(blocker / "data", CONTEXTD_EMBEDDING_MODEL=str(tmp_path / "no-such-model"),
                  CONTEXTD_EMBEDDING_CACHE_DIR=str(blocker / "models"))
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "0 []", done.stdout
    for name in ("schema.json", "TOOL.md"):
        assert (tmp_path / name).read_text() == (ROOT / name).read_text()

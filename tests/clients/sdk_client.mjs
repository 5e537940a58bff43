// The MCP TypeScript SDK as a client of contextd (driven by test_typescript_sdk.py).
//   node sdk_client.mjs stdio <command> [args...]   (env: the server's environment, passed on as is)
//   node sdk_client.mjs http <url>                  (env CONTEXTD_TOKEN: the bearer token)
// Lists the tools, compiles every input and output schema with ajv in strict mode (JSON Schema
// 2020-12, MCP's default dialect), calls a representative set of tools, validates each result's
// structuredContent against the tool's output schema, and prints one JSON report on stdout.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [mode, target, ...rest] = process.argv.slice(2);

function transport() {
  if (mode === "stdio") {
    return new StdioClientTransport({ command: target, args: rest, env: { ...process.env }, stderr: "inherit" });
  }
  if (mode === "http") {
    const headers = { Authorization: `Bearer ${process.env.CONTEXTD_TOKEN}` };
    // The toolsets header, as an HTTP client's config would set it (issue 20): every tool is checked.
    if (process.env.CONTEXTD_TOOLSETS) headers["X-Contextd-Toolsets"] = process.env.CONTEXTD_TOOLSETS;
    return new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers } });
  }
  throw new Error(`unknown mode ${mode}`);
}

// Each step: a tool, its arguments (from what earlier steps returned), and what to keep.
const steps = [
  ["session_start", () => ({ task: "check the TypeScript SDK client" }), (r, ids) => (ids.job_session = r.session_id)],
  ["memory_store", () => ({ title: "ajv strict compiles every schema", content: "Checked by the TypeScript SDK client test." }), (r, ids) => (ids.memory = r.id)],
  ["memory_search", () => ({ query: "ajv strict schema" })],
  ["memory_get", (ids) => ({ memory_id: ids.memory })],
  ["memory_feedback", (ids) => ({ memory_id: ids.memory, helpful: true })],
  ["checkpoint_save", () => ({ summary: "halfway through the SDK check", tags: ["sdk"] }), (r, ids) => (ids.checkpoint = r.checkpoint_id)],
  ["checkpoint_list", () => ({})],
  ["checkpoint_resume", (ids) => ({ checkpoint_id: ids.checkpoint, level: "summary" })],
  ["remediation_record", () => ({ title: "Port in use", problem: "OSError: [Errno 98] Address already in use", solution: "Stop the old server first." }), (r, ids) => (ids.remediation = r.id)],
  ["remediation_search", () => ({ error: "OSError: [Errno 98] Address already in use: ('127.0.0.1', 8080)" })],
  ["remediation_get", (ids) => ({ remediation_id: ids.remediation })],
  ["policy_set", () => ({ title: "No force-push", rule: { kind: "command_regex", pattern: "\\bgit\\s+push\\b.*--force" }, severity: "critical", scope: "project" }), (r, ids) => (ids.policy = r.id)],
  ["policy_check", () => ({ action: "git push --force origin main" })],
  ["policy_list", () => ({})],
  ["skill_create", () => ({ name: "sdk-check", description: "Check a client", prompt_template: "Check {client}." }), (r, ids) => (ids.skill = r.id)],
  ["skill_list", () => ({})],
  ["agent_create", () => ({ name: "sdk-reviewer", description: "Reviews", system_prompt: "Review carefully." }), (r, ids) => (ids.agent = r.id)],
  ["agent_list", () => ({})],
  ["branch_create", () => ({ description: "try the other transport" }), (r, ids) => (ids.branch = r.branch_id)],
  ["branch_status", () => ({})],
  ["branch_return", (ids) => ({ branch_id: ids.branch, message: "both transports work" })],
  ["bash", () => ({ command: "echo contextd-sdk-check" })],
  // A summary, so there is something to distil and a job to ask about (nothing new queues none).
  ["session_end", () => ({ outcome: "success", summary: "Pinned the SDK; the schema check passed." }), (r, ids) => (ids.job = r.job_id)],
  ["distill_status", (ids) => ({ job_id: ids.job })],
  ["policy_delete", (ids) => ({ policy_id: ids.policy })],
  ["skill_delete", (ids) => ({ skill_id: ids.skill })],
  ["agent_delete", (ids) => ({ agent_id: ids.agent })],
];

const report = { tools: 0, schemas_compiled: 0, schema_errors: [], output_schemas: 0, calls: [], annotations: {} };
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const client = new Client({ name: "contextd-ts-sdk-test", version: "1.0.0" });
await client.connect(transport());
const { tools } = await client.listTools();
report.tools = tools.length;
const validators = {};
for (const tool of tools) {
  report.annotations[tool.name] = tool.annotations ?? null;
  for (const [kind, schema] of [["input", tool.inputSchema], ["output", tool.outputSchema]]) {
    if (!schema) continue;
    try {
      const validate = ajv.compile(schema);
      report.schemas_compiled += 1;
      if (kind === "output") {
        validators[tool.name] = validate;
        report.output_schemas += 1;
      }
    } catch (error) {
      report.schema_errors.push(`${tool.name} ${kind}: ${error.message}`);
    }
  }
}
const ids = {};
for (const [name, args, keep] of steps) {
  const call = { tool: name, ok: false, structured: false, valid: null, error: null };
  try {
    // The SDK itself also checks structuredContent against the listed output schema.
    const result = await client.callTool({ name, arguments: args(ids) });
    call.ok = !result.isError;
    if (result.isError) call.error = result.content?.[0]?.text ?? "error";
    call.structured = result.structuredContent !== undefined;
    if (call.structured && validators[name]) {
      call.valid = validators[name](result.structuredContent);
      if (!call.valid) call.error = ajv.errorsText(validators[name].errors);
    }
    if (call.ok && keep) keep(result.structuredContent ?? JSON.parse(result.content[0].text), ids);
  } catch (error) {
    call.error = String(error?.message ?? error);
  }
  report.calls.push(call);
}
await client.close();
process.stdout.write(JSON.stringify(report) + "\n");

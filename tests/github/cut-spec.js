// Cuts the operations switchyard uses out of GitHub's official OpenAPI description
// (@octokit/openapi, dereferenced), so Prism starts in about a second instead of nine.
// Usage: node cut-spec.js OUT.json
"use strict";
const fs = require("fs");
const path = require("path");

// operationId -> why switchyard calls it. Keep in step with src/github/client.rs.
const OPERATIONS = {
  "repos/get": "startup check: the repository exists and the token can see it",
  "pulls/list": "find the PR for a task's branch before creating one",
  "pulls/create": "open a task's PR",
  "pulls/get": "poll a PR: state, head, base (conditional)",
  "pulls/update": "keep the card current; close or reopen",
  "pulls/list-reviews": "approving reviews (conditional)",
  "issues/list-comments": "comment commands (conditional)",
  "issues/create-comment": "answers to commands, merged notes",
  "issues/add-labels": "the configured labels",
  "checks/create": "the switchyard check run",
  "checks/update": "the switchyard check run's state",
  "checks/list-for-ref": "verify = \"github-checks\": check runs",
  "repos/get-combined-status-for-ref": "verify = \"github-checks\": statuses",
  "teams/get-membership-for-user-in-org": "approvers given as @org/team",
};

const out = process.argv[2];
if (!out) {
  console.error("usage: node cut-spec.js OUT.json");
  process.exit(2);
}
const source = path.join(__dirname, "node_modules/@octokit/openapi/generated/api.github.com.deref.json");
const spec = JSON.parse(fs.readFileSync(source, "utf8"));
const paths = {};
const found = new Set();
for (const [p, item] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(item)) {
    if (op && OPERATIONS[op.operationId]) {
      paths[p] = paths[p] || (item.parameters ? { parameters: item.parameters } : {});
      paths[p][method] = op;
      found.add(op.operationId);
    }
  }
}
const missing = Object.keys(OPERATIONS).filter((id) => !found.has(id));
if (missing.length) {
  console.error(`operations not in the spec: ${missing.join(", ")}`);
  process.exit(1);
}
const cut = {
  openapi: spec.openapi,
  info: spec.info,
  servers: spec.servers,
  paths,
  components: {},
};
const tmp = `${out}.${process.pid}.tmp`;
fs.writeFileSync(tmp, JSON.stringify(cut));
fs.renameSync(tmp, out);
console.error(`cut ${found.size} operations (${Object.keys(paths).length} paths) into ${out}`);

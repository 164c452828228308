// envci cleanup: the main step arms, the post step tears down. No npm dependencies: inputs come as
// INPUT_* variables and state as STATE_*, and the workflow-command files are plain appends, so the
// action runs from a checkout with nothing installed.
"use strict";

const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const MIN_PYTHON = [3, 11];
const PYTHON_NAMES = ["python3", "python3.13", "python3.12", "python3.11", "python"];

function input(name) {
  // The runner upper-cases an input's name and keeps its hyphens: kubeconfig-content is INPUT_KUBECONFIG-CONTENT.
  return (process.env[`INPUT_${name.toUpperCase()}`] || "").trim();
}

function appendTo(fileVariable, line) {
  const file = process.env[fileVariable];
  if (file) fs.appendFileSync(file, line + "\n", { encoding: "utf8" });
}

function findPython() {
  // The job's steps may have set one up (actions/setup-python adds it to PATH for later steps,
  // post steps included); ubuntu-22.04's own python3 is 3.10, too old for envci.
  const check = `import sys; sys.exit(sys.version_info[:2] < (${MIN_PYTHON.join(", ")}))`;
  for (const name of PYTHON_NAMES) {
    const done = spawnSync(name, ["-c", check], { stdio: "ignore", timeout: 30000 });
    if (!done.error && done.status === 0) return name;
  }
  return "";
}

function arm() {
  appendTo("GITHUB_STATE", "armed=true");
  const what = input("keep") === "true" ? "will be kept (keep: true)" : "is removed when this job ends, even if it is cancelled";
  console.log(`envci cleanup: this build's environment ${what}`);
  return 0;
}

function tearDown() {
  if (input("keep") === "true") {
    console.log("envci cleanup: keep is true; the environment stays until the janitor reaps it at its TTL");
    return 0;
  }
  const python = input("envci-version") === "installed" ? "python3" : findPython();
  if (!python) {
    console.log("::error title=envci cleanup::no Python >= 3.11 on PATH, so teardown could not run; the janitor removes the environment at its TTL. Run actions/setup-python (or any envci stage action) in this job.");
    return 4;
  }
  const workspace = process.env.GITHUB_WORKSPACE || process.cwd();
  const cwd = path.resolve(workspace, input("working-directory") || ".");
  const env = {
    ...process.env,
    ENVCI_STEP_ACTION_PATH: __dirname,
    ENVCI_STEP_CONFIG: input("config"),
    ENVCI_STEP_ENV: input("environment"),
    ENVCI_STEP_KUBECONFIG: input("kubeconfig"),
    ENVCI_STEP_KUBECONFIG_CONTENT: process.env["INPUT_KUBECONFIG-CONTENT"] || "",
    ENVCI_STEP_VERSION: input("envci-version"),
    ENVCI_STEP_ARGS: `--deadline ${input("deadline") || "3m"}`,
  };
  // The checkout may be gone or elsewhere by now: teardown finds the environment from the CI variables.
  const done = spawnSync(python, [path.join(__dirname, "..", "_lib", "envci_step.py"), "teardown"], {
    cwd: fs.existsSync(cwd) ? cwd : workspace,
    env,
    stdio: "inherit",
  });
  if (done.error) {
    console.log(`::error title=envci cleanup::could not run teardown: ${done.error.message}`);
    return 4;
  }
  return done.status === null ? 4 : done.status;
}

// The post step sees what the main step saved; the main step sees nothing yet.
process.exitCode = process.env.STATE_armed === "true" ? tearDown() : arm();

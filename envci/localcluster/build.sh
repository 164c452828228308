#!/usr/bin/env bash
# Builds the local cluster's binaries from Go modules and caches them outside the repository.
#
# Nothing here downloads a release binary: every program is compiled from the Go module proxy, so the
# build works on machines that reach only package registries. The output directory is keyed by every
# pinned version, so changing a pin builds into a fresh directory and a warm cache costs nothing.
#
# Usage: build.sh [--print-dir]
#   --print-dir  print the directory the binaries live in (built or not) and exit
set -euo pipefail

K8S_VERSION="${ENVCI_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ENVCI_ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${ENVCI_KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${ENVCI_HELM_VERSION:-v3.22.0}"
CONTAINERD_VERSION="${ENVCI_CONTAINERD_VERSION:-v2.4.2}"
COREDNS_VERSION="${ENVCI_COREDNS_VERSION:-v1.15.0}"

CACHE_ROOT="${ENVCI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/envci}/localcluster"
KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_containerd-${CONTAINERD_VERSION}_coredns-${COREDNS_VERSION}"
OUT="$CACHE_ROOT/$KEY"
BIN="$OUT/bin"

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$BIN"
  exit 0
fi

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd kwok kwokctl helm
          containerd containerd-shim-runc-v2 ctr coredns)
missing=()
for b in "${BINARIES[@]}"; do
  [[ -x "$BIN/$b" ]] || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "local cluster binaries: cached in $BIN" >&2
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "error: the Go toolchain is needed to build the local cluster (install Go >= 1.26)" >&2; exit 1; }
mkdir -p "$BIN" "$OUT/src"
start=$SECONDS
log() { printf '[localcluster build %4ds] %s\n' "$((SECONDS - start))" "$*" >&2; }
log "building ${missing[*]} into $BIN (cold build: about 9-10 minutes on 2 cores)"

need() { for b in "$@"; do [[ -x "$BIN/$b" ]] || return 0; done; return 1; }

# A single Go link can take minutes in silence; a line every 30 s says the build is alive.
beat() {  # beat WHAT CMD...
  local what="$1"; shift
  "$@" & local pid=$!
  while ! wait_for "$pid" 30; do log "$what: still compiling"; done
  wait "$pid"
}
wait_for() {  # wait_for PID SECONDS: true once PID has exited
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

# A wrapper module per upstream project: their own go.mod files carry relative replace directives
# that `go install pkg@version` refuses, so we pin them from outside instead.
wrapper() {  # wrapper DIR MODULE
  rm -rf "$1"; mkdir -p "$1"
  (cd "$1" && go mod init "envci.local/$2" >/dev/null 2>&1)
}

build_k8s() {
  local dir="$OUT/src/kubernetes" minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local staging="v0.${K8S_VERSION#v1.}"
  wrapper "$dir" kubernetes
  cd "$dir"
  log "kubernetes $K8S_VERSION: resolving modules (staging modules pinned to $staging)"
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
  local upstream; upstream="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
  # k8s.io/kubernetes requires its staging modules as v0.0.0 and replaces them with ./staging paths
  # that the module zip does not contain; point each at its published release instead.
  local mods; mods=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$upstream")
  local args=()
  for m in $mods; do args+=("-replace=$m=$m@$staging"); done
  go mod edit "${args[@]}" -require="k8s.io/kubernetes@$K8S_VERSION"
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
  for c in "${cmds[@]}"; do go get "k8s.io/kubernetes/cmd/$c@$K8S_VERSION" >/dev/null 2>&1 || go get "k8s.io/kubernetes/cmd/$c@$K8S_VERSION"; done
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  for c in "${cmds[@]}"; do
    need "$c" || continue
    log "kubernetes $K8S_VERSION: compiling $c"
    beat "$c" go build -trimpath -ldflags "$ld" -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$BIN/$c.tmp" "$BIN/$c"
  done
}

build_etcd() {
  local dir="$OUT/src/etcd"
  wrapper "$dir" etcd
  cd "$dir"
  log "etcd $ETCD_VERSION: compiling"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  beat etcd go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}

build_kwok() {
  log "kwok $KWOK_VERSION: compiling kwok and kwokctl"
  local ld="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$K8S_VERSION"
  GOBIN="$BIN" beat kwok go install -trimpath -ldflags "$ld" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
}

build_helm() {
  log "helm $HELM_VERSION: compiling"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  GOBIN="$BIN" beat helm go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_containerd() {
  log "containerd $CONTAINERD_VERSION: compiling containerd, its runc shim and ctr"
  local ld="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
  local m="github.com/containerd/containerd/v2/cmd"
  GOBIN="$BIN" beat containerd go install -trimpath -ldflags "$ld" "$m/containerd@$CONTAINERD_VERSION" \
    "$m/containerd-shim-runc-v2@$CONTAINERD_VERSION" "$m/ctr@$CONTAINERD_VERSION"
}

build_coredns() {
  log "coredns $COREDNS_VERSION: compiling"
  GOBIN="$BIN" beat coredns go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}

if need kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; then (build_k8s); fi
if need etcd; then (build_etcd); fi
if need kwok kwokctl; then (build_kwok); fi
if need helm; then (build_helm); fi
if need containerd containerd-shim-runc-v2 ctr; then (build_containerd); fi
if need coredns; then (build_coredns); fi
rm -rf "$OUT/src"
log "done: $BIN"

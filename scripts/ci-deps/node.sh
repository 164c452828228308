#!/usr/bin/env bash
# Debian packages the local cluster's real node runs on: runc, the CNI plugins (bridge, host-local,
# loopback, portmap), iptables and conntrack for kube-proxy, iproute2 for the bridge and routes.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
[ -x /usr/bin/runc ] || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v ip >/dev/null || need+=(iproute2)
command -v ss >/dev/null || need+=(iproute2)
if [ ${#need[@]} -eq 0 ]; then
  echo "real node packages: present"
  exit 0
fi
echo "real node packages: apt-get install ${need[*]}"
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

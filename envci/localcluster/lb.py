"""Pure: which address each LoadBalancer Service of the local cluster gets.

A real cloud gives a LoadBalancer Service an address from its own network; the local cluster gives
one from a pool on the node (by default 198.19.255.0/24, outside the Service ranges, routed like them, so the host's
route for that range keeps every address on this machine). kube-proxy then programs the address like
any LoadBalancer ingress IP; nothing else is needed to reach it from the host or from pods.

The allocation is a function of the Services alone, recomputed on every change, so an address is
free again as soon as its Service is gone or stops being a LoadBalancer, and a restarted agent
reaches the same answer:

1. A Service keeps the pool address it already has (a stable address is the point of a load
   balancer), unless it now asks for a different one with `spec.loadBalancerIP`.
2. A requested `spec.loadBalancerIP` is honoured when it is in the pool and not in use; otherwise the
   Service gets no address and an error saying why (a cloud does the same: a silently different
   address would be worse).
3. Everyone else gets the lowest free address, oldest Service first.

Services with a `spec.loadBalancerClass` belong to another controller and are left alone. Addresses
that are some Service's ClusterIP are never handed out: the API server allocates ClusterIPs from the
whole Service range, pool included, and kube-proxy cannot serve one address as both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]
Key = tuple[str, str]
"""(namespace, name)"""

DEFAULT_POOL = "198.19.255.0/24"


@dataclass(frozen=True)
class Allocation:
    addresses: dict[Key, str] = field(default_factory=dict)
    """The address each managed Service should show in status.loadBalancer.ingress."""
    errors: dict[Key, str] = field(default_factory=dict)
    """Managed Services that get no address, and why (for a Warning Event)."""
    release: tuple[Key, ...] = ()
    """Services that show a pool address they must give up (no longer a LoadBalancer, or lost it)."""


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def key_of(svc: Obj) -> Key:
    meta = _meta(svc)
    return str(meta.get("namespace") or "default"), str(meta.get("name"))


def managed(svc: Obj) -> bool:
    """A LoadBalancer Service that no other controller claims with a loadBalancerClass."""
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def current_ips(svc: Obj) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if i.get("ip")]


def _ip(text: Any) -> ipaddress.IPv4Address | None:
    try:
        addr = ipaddress.ip_address(str(text))
    except ValueError:
        return None
    return addr if isinstance(addr, ipaddress.IPv4Address) else None


def _cluster_ips(svc: Obj) -> set[ipaddress.IPv4Address]:
    spec = svc.get("spec") or {}
    found = {_ip(spec.get("clusterIP")), *(_ip(ip) for ip in spec.get("clusterIPs") or [])}
    return {a for a in found if a is not None}


def allocate(services: Iterable[Obj], pool: str = DEFAULT_POOL) -> Allocation:
    """Decide every LoadBalancer address from scratch; deterministic for the same Services."""
    net = ipaddress.IPv4Network(pool)
    svcs = sorted(services, key=lambda s: (str(_meta(s).get("creationTimestamp") or ""), key_of(s)))
    reserved = set().union(*(_cluster_ips(s) for s in svcs)) if svcs else set()
    taken: dict[ipaddress.IPv4Address, Key] = {}
    addresses: dict[Key, str] = {}
    errors: dict[Key, str] = {}
    todo = [s for s in svcs if managed(s)]

    def free(addr: ipaddress.IPv4Address) -> bool:
        return addr not in taken and addr not in reserved

    requested = {key_of(s): _ip((s.get("spec") or {}).get("loadBalancerIP")) for s in todo}
    raw_request = {key_of(s): (s.get("spec") or {}).get("loadBalancerIP") for s in todo}

    # 1. keep what a Service has (and still wants)
    for svc in todo:
        k = key_of(svc)
        for text in current_ips(svc):
            addr = _ip(text)
            if addr is None or addr not in net or not free(addr):
                continue
            if raw_request[k] and requested[k] != addr:
                continue
            taken[addr] = k
            addresses[k] = str(addr)
            break

    # 2. requested addresses
    for svc in todo:
        k = key_of(svc)
        if k in addresses or not raw_request[k]:
            continue
        addr = requested[k]
        if addr is None or addr not in net:
            errors[k] = f"spec.loadBalancerIP {raw_request[k]} is not in the local cluster's pool {pool}"
        elif addr in reserved:
            errors[k] = f"spec.loadBalancerIP {addr} is a Service's ClusterIP; choose another address in {pool}"
        elif addr in taken:
            owner = "/".join(taken[addr])
            errors[k] = f"spec.loadBalancerIP {addr} is already used by Service {owner}"
        else:
            taken[addr] = k
            addresses[k] = str(addr)

    # 3. the lowest free address for the rest
    candidates = (a for a in net.hosts() if free(a))
    for svc in todo:
        k = key_of(svc)
        if k in addresses or k in errors:
            continue
        addr = next((a for a in candidates if free(a)), None)
        if addr is None:
            errors[k] = (f"no free LoadBalancer address: all of {pool} is in use by {len(addresses)} Service(s); "
                         "delete a LoadBalancer Service or use type NodePort")
            continue
        taken[addr] = k
        addresses[k] = str(addr)

    release = tuple(
        key_of(s) for s in svcs
        if (managed(s) or (s.get("spec") or {}).get("type") != "LoadBalancer")
        and key_of(s) not in addresses
        and any((a := _ip(ip)) is not None and a in net for ip in current_ips(s))
    )
    return Allocation(addresses, errors, release)


def wanted_status(ip: str | None) -> dict[str, Any]:
    """The status subresource patch for one address (or none). `ipMode: VIP`: kube-proxy routes the
    address to the endpoints itself, as for a cloud load balancer that keeps the destination."""
    return {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}] if ip else []}}}


def needs_patch(svc: Obj, ip: str | None) -> bool:
    """Whether the Service's status differs from what the allocation wants."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    want: list[dict[str, Any]] = wanted_status(ip)["status"]["loadBalancer"]["ingress"]
    return [{"ip": i.get("ip"), "ipMode": i.get("ipMode")} for i in ingress] != want

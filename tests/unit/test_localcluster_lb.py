"""LoadBalancer addresses for the local cluster, on Service objects as the API server returns them."""

from __future__ import annotations

import random
from typing import Any

from envci.localcluster import lb
from envci.localcluster.lb import allocate

POOL = "198.19.127.0/29"  # .1 to .6 usable: small enough to run out


def service(name: str, *, ns: str = "envci-shop-pr-1", type_: str = "LoadBalancer", created: str = "2026-01-01T10:00:00Z",
            cluster_ip: str = "198.19.3.7", lb_ip: str | None = None, lb_class: str | None = None,
            status_ips: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": type_,
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
        "sessionAffinity": "None",
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
    }
    if type_ == "LoadBalancer":
        spec |= {"allocateLoadBalancerNodePorts": True, "externalTrafficPolicy": "Cluster"}
        spec["ports"][0]["nodePort"] = 30080
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "resourceVersion": "42", "creationTimestamp": created},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in status_ips]} if status_ips else {}},
    }


def k(name: str, ns: str = "envci-shop-pr-1") -> tuple[str, str]:
    return ns, name


def test_new_services_get_the_lowest_free_addresses_oldest_first() -> None:
    got = allocate([service("a", created="2026-01-01T10:00:02Z"), service("b", created="2026-01-01T10:00:01Z")], POOL)
    assert got.addresses == {k("b"): "198.19.127.1", k("a"): "198.19.127.2"}
    assert got.errors == {} and got.release == ()


def test_an_existing_address_is_kept() -> None:
    got = allocate([service("old", status_ips=["198.19.127.5"]), service("new", created="2026-01-01T09:00:00Z")], POOL)
    assert got.addresses == {k("old"): "198.19.127.5", k("new"): "198.19.127.1"}
    assert got.release == ()


def test_a_requested_address_is_honoured_when_free() -> None:
    got = allocate([service("web", lb_ip="198.19.127.4"), service("x", created="2026-01-01T09:00:00Z")], POOL)
    assert got.addresses[k("web")] == "198.19.127.4"
    assert got.addresses[k("x")] == "198.19.127.1"


def test_a_changed_request_moves_the_address() -> None:
    got = allocate([service("web", lb_ip="198.19.127.4", status_ips=["198.19.127.1"])], POOL)
    assert got.addresses == {k("web"): "198.19.127.4"}


def test_a_request_outside_the_pool_or_taken_is_an_error() -> None:
    got = allocate([
        service("owner", status_ips=["198.19.127.3"], created="2026-01-01T09:00:00Z"),
        service("thief", lb_ip="198.19.127.3"),
        service("far", lb_ip="10.0.0.1"),
        service("junk", lb_ip="not-an-ip"),
    ], POOL)
    assert got.addresses == {k("owner"): "198.19.127.3"}
    assert "already used by Service envci-shop-pr-1/owner" in got.errors[k("thief")]
    assert "not in the local cluster's pool 198.19.127.0/29" in got.errors[k("far")]
    assert k("junk") in got.errors


def test_services_with_a_class_or_another_type_are_left_alone() -> None:
    got = allocate([service("mine"), service("theirs", lb_class="example.com/lb"), service("cip", type_="ClusterIP")], POOL)
    assert got.addresses == {k("mine"): "198.19.127.1"}
    assert got.errors == {}


def test_cluster_ips_in_the_pool_are_never_handed_out() -> None:
    got = allocate([service("clash", type_="ClusterIP", cluster_ip="198.19.127.1"), service("lb"),
                    service("ask", lb_ip="198.19.127.1", created="2026-01-01T09:00:00Z")], POOL)
    assert got.addresses == {k("lb"): "198.19.127.2"}
    assert "ClusterIP" in got.errors[k("ask")]


def test_a_kept_address_that_became_a_cluster_ip_is_replaced() -> None:
    got = allocate([service("lb", status_ips=["198.19.127.1"]), service("clash", type_="ClusterIP", cluster_ip="198.19.127.1")], POOL)
    assert got.addresses == {k("lb"): "198.19.127.2"}


def test_an_exhausted_pool_is_an_error_for_the_newest() -> None:
    services = [service(f"s{i}", created=f"2026-01-01T10:00:0{i}Z") for i in range(8)]
    got = allocate(services, POOL)
    assert sorted(got.addresses.values()) == [f"198.19.127.{i}" for i in range(1, 7)]
    assert set(got.errors) == {k("s6"), k("s7")}
    assert "no free LoadBalancer address: all of 198.19.127.0/29 is in use by 6 Service(s)" in got.errors[k("s7")]


def test_deleting_a_service_frees_its_address() -> None:
    services = [service(f"s{i}", created=f"2026-01-01T10:00:0{i}Z") for i in range(7)]
    first = allocate(services, POOL)
    assert k("s6") in first.errors
    with_addresses = [service(s["metadata"]["name"], created=s["metadata"]["creationTimestamp"], status_ips=[first.addresses[key]])
                      for s in services if (key := lb.key_of(s)) in first.addresses]
    second = allocate([s for s in with_addresses if s["metadata"]["name"] != "s2"] + [services[6]], POOL)
    assert second.addresses[k("s6")] == first.addresses[k("s2")]
    assert all(second.addresses[key] == first.addresses[key] for key in second.addresses if key != k("s6"))


def test_addresses_given_up_are_released() -> None:
    got = allocate([service("was-lb", type_="ClusterIP", status_ips=["198.19.127.2"]),
                    service("other", lb_class="example.com/lb", status_ips=["198.19.127.3"]),
                    service("outside", status_ips=["203.0.113.5"]),
                    service("np", type_="NodePort", status_ips=["203.0.113.6"])], POOL)
    assert got.release == (k("was-lb"),)
    assert got.addresses == {k("outside"): "198.19.127.1"}


def test_the_same_services_give_the_same_answer_in_any_order() -> None:
    services = [service(f"s{i}", ns=f"ns{i % 3}") for i in range(6)] + [service("r", lb_ip="198.19.127.6")]
    first = allocate(services, POOL)
    rng = random.Random(3)
    for _ in range(5):
        shuffled = services[:]
        rng.shuffle(shuffled)
        assert allocate(shuffled, POOL) == first


def test_status_patch_and_whether_it_is_needed() -> None:
    assert lb.wanted_status("198.19.127.1") == {"status": {"loadBalancer": {"ingress": [{"ip": "198.19.127.1", "ipMode": "VIP"}]}}}
    assert lb.wanted_status(None) == {"status": {"loadBalancer": {"ingress": []}}}
    assert not lb.needs_patch(service("a", status_ips=["198.19.127.1"]), "198.19.127.1")
    assert lb.needs_patch(service("a", status_ips=["198.19.127.1"]), "198.19.127.2")
    assert lb.needs_patch(service("a"), "198.19.127.1")
    assert not lb.needs_patch(service("a"), None)
    legacy = service("a")
    legacy["status"] = {"loadBalancer": {"ingress": [{"ip": "198.19.127.1"}]}}
    assert lb.needs_patch(legacy, "198.19.127.1")  # ipMode missing

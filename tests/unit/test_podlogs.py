"""`envci logs`' own decisions, on real pod shapes: which container instances a pod has, which one a
read shows, what a follower reads next (so restarts and new pods are picked up, and nothing is
shown twice), and how a line is printed."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from envci import podlogs
from envci.podlogs import Instance, Line, Progress, Read

DATA = Path(__file__).resolve().parents[1] / "data" / "readiness"
NOW = 1_800_000_000 * 1_000_000_000


def load(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return obj


def ids(found: list[Instance]) -> list[tuple[str, str, bool, bool]]:
    return [(i.container, i.id[-8:], i.running, i.previous) for i in found]


# --- instances ----------------------------------------------------------------------------------


def test_a_restarted_running_container_has_its_current_and_its_previous_instance() -> None:
    assert ids(podlogs.instances(load("pod-crash-running"))) == [("app", "02020202", False, True), ("app", "03030303", True, False)]


def test_a_crashed_container_shown_as_terminated_is_its_own_current_instance() -> None:
    # A recent kubelet shows the crashed run as `terminated` until it restarts it.
    assert ids(podlogs.instances(load("pod-crash-error"))) == [("app", "01010101", False, True), ("app", "02020202", False, False)]


def test_a_container_waiting_to_restart_has_only_its_last_run() -> None:
    found = podlogs.instances(load("pod-crashloop"))
    assert ids(found) == [("app", "0615e4d3", False, True)]
    # Without --previous its last run is what there is to read, as `kubectl logs` shows it.
    assert podlogs.pick(found, "app", previous=False) == found[0]
    assert podlogs.pick(found, "app", previous=True) == found[0]


def test_one_run_reported_both_as_current_and_last_is_one_instance() -> None:
    pod = load("pod-crash-error")
    cs = pod["status"]["containerStatuses"][0]
    cs["lastState"]["terminated"]["containerID"] = cs["state"]["terminated"]["containerID"]
    assert ids(podlogs.instances(pod)) == [("app", "02020202", False, False)]


def test_a_container_that_never_started_has_nothing_to_read_and_says_why() -> None:
    pod = load("pod-image-pull-backoff")
    assert podlogs.instances(pod) == []
    assert podlogs.pick([], "app", previous=False) is None
    assert podlogs.waiting_reason(pod, "app") == "ImagePullBackOff"


def test_init_containers_come_first() -> None:
    pod = load("pod-init-crashloop")
    assert podlogs.container_names(pod) == ["migrate", "app"]
    assert [(i.container, i.init, i.previous) for i in podlogs.instances(pod)] == [("migrate", True, True)]


def test_pick_prefers_the_current_instance_and_previous_asks_for_the_one_before() -> None:
    found = podlogs.instances(load("pod-crash-running"))
    assert podlogs.pick(found, "app", previous=False).id.endswith("03030303")  # type: ignore[union-attr]
    assert podlogs.pick(found, "app", previous=True).id.endswith("02020202")  # type: ignore[union-attr]
    assert podlogs.pick(podlogs.instances(load("pod-ready")), "app", previous=True) is None


# --- what a follower reads ----------------------------------------------------------------------

RUNNING = Instance("web-1", "app", "c://2", running=True)
BEFORE = Instance("web-1", "app", "c://1", previous=True)


def test_first_look_follows_current_instances_with_tail_and_since_and_skips_history() -> None:
    reads = podlogs.plan([BEFORE, RUNNING], {}, first=True, now_ns=NOW, tail_lines=20, since_seconds=600)
    assert reads == [Read(BEFORE, follow=False, skip=True), Read(RUNNING, follow=True, tail_lines=20, since_seconds=600)]


def test_first_look_reads_the_last_run_of_a_container_waiting_to_restart() -> None:
    reads = podlogs.plan([BEFORE], {}, first=True, now_ns=NOW, tail_lines=5)
    assert reads == [Read(BEFORE, follow=False, tail_lines=5)]


def test_a_restart_is_read_from_its_first_line_and_the_old_instance_not_again() -> None:
    progress = {BEFORE.id: Progress(last_ns=NOW - 5, done=True)}
    restarted = Instance("web-1", "app", "c://2", running=True)
    assert podlogs.plan([BEFORE, restarted], progress, first=False, now_ns=NOW, tail_lines=20) == [Read(restarted, follow=True)]


def test_a_new_pod_is_read_whole() -> None:
    new = Instance("web-2", "app", "c://9", running=True)
    assert podlogs.plan([new], {}, first=False, now_ns=NOW, tail_lines=3, since_seconds=60) == [Read(new, follow=True)]


def test_an_instance_that_came_and_went_between_two_looks_is_read_as_previous() -> None:
    missed = Instance("web-1", "app", "c://5", previous=True)
    current = Instance("web-1", "app", "c://6", running=True)
    reads = podlogs.plan([missed, current], {}, first=False, now_ns=NOW)
    assert reads == [Read(missed, follow=False), Read(current, follow=True)]


def test_a_read_in_progress_or_finished_is_left_alone() -> None:
    progress = {RUNNING.id: Progress(reading=True), BEFORE.id: Progress(done=True)}
    assert podlogs.plan([BEFORE, RUNNING], progress, first=False, now_ns=NOW) == []


def test_a_follow_cut_off_while_running_resumes_after_its_last_line() -> None:
    last = NOW - 7_500_000_000  # 7.5 s ago
    reads = podlogs.plan([RUNNING], {RUNNING.id: Progress(last_ns=last)}, first=False, now_ns=NOW)
    assert reads == [Read(RUNNING, follow=True, since_seconds=9, after_ns=last)]


def test_a_follow_cut_off_before_its_instance_ended_is_finished_by_one_read() -> None:
    ended = Instance("web-1", "app", "c://2", running=False)
    reads = podlogs.plan([ended], {ended.id: Progress(last_ns=NOW - 1_000_000_000)}, first=False, now_ns=NOW)
    assert reads == [Read(ended, follow=False, since_seconds=3, after_ns=NOW - 1_000_000_000)]


# --- pods of a component ------------------------------------------------------------------------


def test_pods_are_chosen_by_component_and_sorted() -> None:
    pods = [{"metadata": {"name": n}} for n in ("web-b", "db-0", "web-a")]
    of = {"web-b": "web", "web-a": "web", "db-0": "db"}
    chosen = podlogs.select_pods(pods, lambda p: of[p["metadata"]["name"]], "web")
    assert [(c, p["metadata"]["name"]) for c, p in chosen] == [("web", "web-a"), ("web", "web-b")]
    everything = podlogs.select_pods(pods, lambda p: of[p["metadata"]["name"]], None)
    assert [p["metadata"]["name"] for _, p in everything] == ["db-0", "web-a", "web-b"]


def test_an_unknown_component_is_answered_with_the_known_ones() -> None:
    assert podlogs.unknown_component("wbe", ["web", "db", "web"]) == "no component named 'wbe'; the environment has: db, web"


# --- lines --------------------------------------------------------------------------------------


def test_timestamps_keep_their_nanoseconds() -> None:
    a = podlogs.stamp_ns("2026-11-24T11:10:49.283663854Z")
    b = podlogs.stamp_ns("2026-11-24T11:10:49.283663855Z")
    assert a is not None and b is not None and b - a == 1
    assert podlogs.stamp_ns("2026-11-24T12:10:49.5+01:00") == podlogs.stamp_ns("2026-11-24T11:10:49.500Z")
    assert podlogs.stamp_ns("2026-11-24T11:10:49Z") == a - 283663854
    assert podlogs.stamp_ns("yesterday") is None


def test_a_line_is_split_into_time_and_message() -> None:
    assert podlogs.split_stamp("2026-11-24T11:10:49.28Z boom at 3") == ("2026-11-24T11:10:49.28Z", podlogs.stamp_ns("2026-11-24T11:10:49.28Z"), "boom at 3")
    assert podlogs.split_stamp("2026-11-24T11:10:49Z ") == ("2026-11-24T11:10:49Z", podlogs.stamp_ns("2026-11-24T11:10:49Z"), "")
    assert podlogs.split_stamp("no time here") == ("", None, "no time here")


LINE = Line("web", "web-7c5d-k8m2p", "app", "listening on :8080", "2026-11-24T11:10:49.28Z", namespace="envci-shop-pr-42")


def test_text_lines_carry_the_kubectl_prefix_and_mark_an_earlier_instance() -> None:
    assert podlogs.format_text(LINE, colour=False) == "[pod/web-7c5d-k8m2p/app] listening on :8080"
    old = Line("web", "web-7c5d-k8m2p", "app", "boom", previous=True)
    assert podlogs.format_text(old, colour=False) == "[pod/web-7c5d-k8m2p/app previous] boom"


def test_colours_are_stable_per_pod_and_only_on_a_terminal() -> None:
    coloured = podlogs.format_text(LINE, colour=True)
    assert coloured == podlogs.format_text(LINE, colour=True)
    assert f"\x1b[{podlogs.colour_of('web-7c5d-k8m2p')}mweb-7c5d-k8m2p\x1b[0m" in coloured
    assert podlogs.colour_of("web-7c5d-k8m2p") == podlogs.PALETTE[zlib.crc32(b"web-7c5d-k8m2p") % len(podlogs.PALETTE)]
    assert podlogs.use_colour(is_tty=True, env={}, mode="text")
    assert not podlogs.use_colour(is_tty=False, env={}, mode="text")
    assert not podlogs.use_colour(is_tty=True, env={"NO_COLOR": "1"}, mode="text")
    assert not podlogs.use_colour(is_tty=True, env={}, mode="json")


def test_json_output_is_one_object_per_line_with_a_fixed_shape() -> None:
    text = podlogs.Style(mode="json").render(LINE)
    assert "\n" not in text
    assert json.loads(text) == {
        "namespace": "envci-shop-pr-42", "component": "web", "pod": "web-7c5d-k8m2p", "container": "app",
        "previous": False, "time": "2026-11-24T11:10:49.28Z", "message": "listening on :8080",
    }


def test_a_line_read_twice_is_shown_once() -> None:
    """A read meant for an instance that just ended is served the restarted instance's log (logs are
    asked for by container name), which is read again once it is seen: its lines come twice."""
    shown = podlogs.Shown(keep=3)
    life2 = podlogs.Line("web", "web-1", "app", "life 2", "2026-01-01T00:00:05.000000001Z")
    assert shown.first_time(life2) and not shown.first_time(life2)
    assert shown.first_time(podlogs.Line("web", "web-2", "app", "life 2", life2.time))  # another pod's line
    assert shown.first_time(podlogs.Line("web", "web-1", "app", "life 2", "2026-01-01T00:00:09.000000001Z"))  # said again, later
    assert shown.first_time(podlogs.Line("web", "web-1", "app", "no stamp")) and shown.first_time(podlogs.Line("web", "web-1", "app", "no stamp"))
    for n in range(3):  # only the newest `keep` stamps of a container are remembered
        shown.first_time(podlogs.Line("web", "web-1", "app", f"x{n}", f"2026-01-01T00:01:0{n}Z"))
    assert shown.first_time(life2)

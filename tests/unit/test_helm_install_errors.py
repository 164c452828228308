"""What a failed `helm upgrade --install` amounts to, from Helm's own words (as Helm 3 prints them)."""

from __future__ import annotations

from envci.errors import ConfigError, ExitCode, InfrastructureError, NotReadyError
from envci.helm import install_error

NS = "envci-shop-pr-42"


def test_a_failed_pre_install_hook_is_not_ready_naming_the_job_and_where_its_logs_are() -> None:
    text = "Error: failed pre-install: 1 error occurred:\n\t* job api-migrate failed: BackoffLimitExceeded\n\n"
    e = install_error("api", NS, text)
    assert isinstance(e, NotReadyError) and e.exit_code == ExitCode.NOT_READY
    assert e.message == f"release api in {NS}: its pre-install hook failed: job api-migrate failed: BackoffLimitExceeded"
    assert f"`kubectl -n {NS} logs job/api-migrate`" in (e.hint or "")


def test_a_post_install_hook_that_timed_out_is_not_ready_too() -> None:
    text = "Error: UPGRADE FAILED: failed post-upgrade: 1 error occurred:\n\t* timed out waiting for the condition\n"
    e = install_error("web", NS, text)
    assert isinstance(e, NotReadyError)
    assert e.message.endswith("its post-upgrade hook failed: timed out waiting for the condition")
    assert f"`kubectl -n {NS} get events`" in (e.hint or "")


def test_a_custom_resource_with_no_crd_in_a_chart_is_bad_input_naming_it() -> None:
    text = (
        'Error: INSTALLATION FAILED: unable to build kubernetes objects from release manifest: resource mapping not found '
        'for name: "op-example" namespace: "" from "": no matches for kind "Widget" in version "corpus.envci.test/v1alpha1"\n'
        "ensure CRDs are installed first"
    )
    e = install_error("op", NS, text)
    assert isinstance(e, ConfigError) and e.exit_code == ExitCode.BAD_INPUT
    assert e.message == "release op: Widget op-example: the cluster has no API for Widget (corpus.envci.test/v1alpha1)"
    assert "CustomResourceDefinition of Widget" in (e.hint or "")


def test_anything_else_is_an_infrastructure_error_with_helms_words() -> None:
    e = install_error("api", NS, "Error: Kubernetes cluster unreachable: connection refused")
    assert isinstance(e, InfrastructureError) and e.exit_code == ExitCode.INFRASTRUCTURE
    assert e.message == f"helm failed for release api in {NS}: Error: Kubernetes cluster unreachable: connection refused"

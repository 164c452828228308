"""Reading a command's exit code from the exec stream's final Status (pure)."""

from __future__ import annotations

from envci.seeders.exec import exit_code


def test_exit_code_from_kubelet_and_other_runtimes() -> None:
    assert exit_code({"status": "Success"}) == 0
    kubelet = {"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}}
    assert exit_code(kubelet) == 7
    kwok = {"status": "Failure", "reason": "InternalError", "message": "error executing command in container: cmd wait: sh: exit status 3"}
    assert exit_code(kwok) == 3
    assert exit_code({"status": "Failure", "message": "container not found"}) == 1
    assert exit_code(None) is None

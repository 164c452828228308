"""Checks the test stage runs with pytest (named so the repository's own test run skips them).

Three pass and one fails on purpose, so the report has a failure to name.
"""

import os


def test_environment_name_is_set() -> None:
    assert os.environ["ENVCI_NAME"]


def test_url_of_the_api_component() -> None:
    assert os.environ["ENVCI_URL_API"].startswith("http://api.")


def test_kubeconfig_is_a_file() -> None:
    assert os.path.isfile(os.environ["KUBECONFIG"])


def test_checkout_total() -> None:
    total = 3 * 7
    assert total == 20, "checkout total is off by one"

"""The driver's errors say the step, the selector key and the selector, in the client's words."""

from __future__ import annotations

from child.site.errors import DriverError, UnsupportedSetting, missing
from coordinator.protocol.openai import error_body


def test_a_missing_selector_names_step_key_and_selector() -> None:
    error = missing("submit", "run_button", 'ms-run-button button[type="submit"].ms-button-primary', 10)
    assert error.message == (
        'step submit: selector run_button (`ms-run-button button[type="submit"].ms-button-primary`) '
        "matched nothing within 10s"
    )
    assert (error.status, error.code, error.step, error.key) == (502, "site_changed", "submit", "run_button")


def test_a_long_selector_is_clipped_in_the_message() -> None:
    error = DriverError("load", "matched nothing", key="prompt", selector="x" * 500)
    assert len(error.message) < 150 and "…" in error.message


def test_a_step_without_selector_says_what_happened() -> None:
    assert DriverError("answer", "the page shows an error: boom").message == (
        "step answer: the page shows an error: boom"
    )


def test_an_unsupported_setting_is_the_clients_400_naming_it() -> None:
    error = UnsupportedSetting("temperature", "replica-lite")
    assert (error.status, error.code, error.param) == (400, "unsupported_parameter", "temperature")
    body = error_body(error.message, status=error.status, code=error.code, param=error.param)
    assert body["error"]["param"] == "temperature"
    assert "replica-lite" in body["error"]["message"]

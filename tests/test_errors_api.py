"""One error hierarchy (issue 13): a command time-out is a TimeoutError as well as a
QuecError; an HTTP status error is told apart from the module's own 7xx errors."""

from __future__ import annotations

import pytest

from quecmqtt.errors import CommandTimeout, HttpError, HttpStatusError, QuecError
from quecmqtt.services.http import HttpResponse


def test_a_command_time_out_is_a_timeout_error() -> None:
    error = CommandTimeout("AT+CSQ", 2.0)
    assert isinstance(error, TimeoutError) and isinstance(error, QuecError)
    with pytest.raises(TimeoutError, match="AT\\+CSQ: timed out after 2 s"):
        raise error


def test_an_http_status_is_not_a_module_error() -> None:
    with pytest.raises(HttpStatusError) as caught:
        HttpResponse(404, 0, b"").raise_for_status()
    assert caught.value.status == 404 and isinstance(caught.value, HttpError)
    HttpResponse(200, 2, b"ok").raise_for_status()  # nothing to raise

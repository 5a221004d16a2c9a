"""The scheduled jobs' HTTP entry: what the scope parameter accepts."""

from __future__ import annotations

import flask

from functions.entrypoints import jobs


def test_reconcile_all_refuses_an_unknown_scope_before_building_anything() -> None:
    app = flask.Flask(__name__)
    with app.test_request_context("/?scope=everything", method="POST"):
        response = jobs.handle_reconcile_all_request(flask.request)
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"

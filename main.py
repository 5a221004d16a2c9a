"""Cloud Functions entry points (the module Cloud Functions deploys from).

Each entry point is thin: it hands the request to its handler in functions/. Nothing
is built at import time; clients and settings are created on the first request.
"""

from __future__ import annotations

import flask
import functions_framework

from functions import webhook


@functions_framework.http
def stripe_webhook(request: flask.Request) -> flask.Response:
    return webhook.handle(request)

"""`GET /openapi.json`: the shim's routes and parameters as OpenAPI 3.1.

Built from the same constants the dialect parsers read (SparkPost's parameter
tables, Tastypie's Meta.filtering, ...), so the document cannot claim a
parameter a route ignores or miss one it reads; a test also checks that every
registered route is documented and every documented path is served.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from . import copernica, interaction, sparkpost, tastypie
from .jsonbody import json_response

PATH = "/openapi.json"

_INTEGER_PARAMS = frozenset({"page", "per_page", "limit", "offset"})


def _query(
    names: Iterable[str], descriptions: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    described = descriptions or {}
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "integer" if name in _INTEGER_PARAMS else "string"},
            **({"description": described[name]} if name in described else {}),
        }
        for name in names
    ]


def _path(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _responses(*codes: int) -> dict[str, Any]:
    meanings = {
        200: "OK",
        400: "bad parameters, in the dialect's error JSON",
        401: "no valid API key",
        404: "no such event",
        500: "the service failed",
        503: "not ready: the service or its store does not answer, or it is draining",
    }
    return {str(code): {"description": meanings[code]} for code in codes}


_SPARKPOST_NOTES = {
    "events": "comma list (or `delimiter`) of event types",
    "from": "YYYY-MM-DDTHH:MM in `timezone`, inclusive; default one hour (cursor form: 24 h) ago",
    "to": "YYYY-MM-DDTHH:MM in `timezone`, exclusive; default the end of the current minute",
    "timezone": "IANA time zone name, default UTC",
    "reason": "matched as %reason%, case-insensitive; % and _ are literal",
    "per_page": "1..10000, default 1000",
    "page": "from 1",
    "cursor": "`initial` or the cursor of a `next` link",
}


def document() -> dict[str, Any]:
    tastypie_list = _query(
        (*tastypie.LIST_PARAMS, *tastypie.FILTER_PARAMS),
        {
            "limit": "default 20; 0 or above 1000 means 1000",
            "order_by": "event_timestamp or id, - for descending",
        },
    )
    copernica_get = {
        "summary": "Copernica: a message's (transmission's) events, at most a month of them",
        "parameters": [_path("message_id"), *_query(copernica.PARAMS)],
        "responses": _responses(200, 400),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailevents REST-compat shim",
            "version": "1",
            "description": "Four providers' message-event dialects over the mailevents gRPC "
            "service. See docs/dialects.md for the field mappings and choices.",
        },
        "components": {
            "securitySchemes": {
                "rawKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "basic": {"type": "http", "scheme": "basic"},
                "tastypieHeader": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "tastypieQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
                "accessToken": {"type": "apiKey", "in": "query", "name": "access_token"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "xApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            }
        },
        "paths": {
            sparkpost.MESSAGE_EVENTS_PATH: {
                "get": {
                    "summary": "SparkPost Message Events search (page/per_page)",
                    "security": [{"rawKey": []}, {"basic": []}],
                    "parameters": _query(sparkpost.MESSAGE_EVENTS_PARAMS, _SPARKPOST_NOTES),
                    "responses": _responses(200, 400, 401, 500),
                }
            },
            sparkpost.EVENTS_MESSAGE_PATH: {
                "get": {
                    "summary": "SparkPost Events API message search (cursor)",
                    "security": [{"rawKey": []}, {"basic": []}],
                    "parameters": _query(sparkpost.EVENTS_MESSAGE_PARAMS, _SPARKPOST_NOTES),
                    "responses": _responses(200, 400, 401, 500),
                }
            },
            tastypie.LIST_PATH: {
                "get": {
                    "summary": "Tastypie messageevent list",
                    "security": [{"tastypieHeader": []}, {"tastypieQuery": []}],
                    "parameters": tastypie_list,
                    "responses": _responses(200, 400, 401, 500),
                }
            },
            tastypie.DETAIL_PATH: {
                "get": {
                    "summary": "Tastypie messageevent detail",
                    "security": [{"tastypieHeader": []}, {"tastypieQuery": []}],
                    "parameters": [_path("pk", "integer"), *_query(tastypie.DETAIL_PARAMS)],
                    "responses": _responses(200, 401, 404),
                }
            },
            copernica.PATH: {"get": copernica_get},
            copernica.PATH + "/": {"get": copernica_get},
            interaction.PATH: {
                "post": {
                    "summary": "Interaction-data report of a mailing (bulk email), 100 rows a page",
                    "security": [{"bearer": []}, {"xApiKey": []}],
                    "parameters": [_path("messageId", "integer")],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _interaction_schema()}},
                    },
                    "responses": _responses(200, 400, 401, 500),
                }
            },
            PATH: {"get": {"summary": "This document", "responses": _responses(200)}},
            "/healthz": {
                "get": {"summary": "Liveness: the process is up", "responses": _responses(200)}
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: the service and its store answer, not draining",
                    "responses": _responses(200, 503),
                }
            },
        },
    }


def _interaction_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["interactionType", "fromDate", "toDate", "order"],
        "properties": {
            "interactionType": {"type": "string", "enum": list(interaction.INTERACTION_TYPES)},
            "fromDate": {"type": "string", "format": "date"},
            "toDate": {"type": "string", "format": "date"},
            "pageNumber": {"type": "integer", "minimum": 1, "default": 1},
            "order": {"type": "string", "enum": ["asc", "desc"]},
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document())


def routes() -> list[web.RouteDef]:
    return [web.get(PATH, openapi_json)]

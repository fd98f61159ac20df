"""REST-compat shim: four providers' message-event dialects over the gRPC service.

Each dialect is one module that parses its parameters into an `EventQuery`,
calls MessageEventService through the generated stub with the caller's key,
and renders the events in the provider's JSON. docs/dialects.md has the
mapping tables and every choice made where a provider's document is silent.
"""

from __future__ import annotations

from .app import bound_port, create_app, start_rest

__all__ = ["bound_port", "create_app", "start_rest"]

"""`/api/messageevent/`, and the URIs its foreign keys render."""

from __future__ import annotations

from django.urls import include, path

from tastypie_reference.api import BulkEmailResource, MessageEventResource, SendEmailResource

urlpatterns = [
    path("api/", include(MessageEventResource().urls)),
    path("api/", include(BulkEmailResource().urls)),
    path("api/", include(SendEmailResource().urls)),
]

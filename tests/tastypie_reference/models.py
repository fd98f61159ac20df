"""A model shaped like the seed's messageevent resource (Quorum's outbox events)."""

from __future__ import annotations

from django.db import models


class BulkEmail(models.Model):
    class Meta:
        app_label = "tastypie_reference"


class SendEmail(models.Model):
    class Meta:
        app_label = "tastypie_reference"


class MessageEvent(models.Model):
    bulk_email = models.ForeignKey(BulkEmail, null=True, on_delete=models.CASCADE)
    send_email = models.ForeignKey(SendEmail, null=True, on_delete=models.CASCADE)
    event_id = models.CharField(max_length=64, null=True)
    event_name = models.CharField(max_length=64, null=True)
    event_timestamp = models.DateTimeField(null=True)
    event_type = models.CharField(max_length=64, null=True)
    event_json = models.JSONField(default=dict)
    archived = models.BooleanField(default=False)

    class Meta:
        app_label = "tastypie_reference"
        # The resource lists by id when no order_by is given.
        ordering = ["id"]

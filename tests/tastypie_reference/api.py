"""The seed's resource as a stock ModelResource: its fields, filtering and ordering."""

from __future__ import annotations

from tastypie import fields
from tastypie.resources import ModelResource

from tastypie_reference.models import BulkEmail, MessageEvent, SendEmail

TEXT_FILTERS = [
    "exact",
    "in",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "iexact",
    "isnull",
]
DATE_FILTERS = ["exact", "year", "month", "day", "week_day", "hour", "minute", "second"]


class BulkEmailResource(ModelResource):
    class Meta:
        queryset = BulkEmail.objects.all()
        resource_name = "bulkemail"


class SendEmailResource(ModelResource):
    class Meta:
        queryset = SendEmail.objects.all()
        resource_name = "sendemail"


class MessageEventResource(ModelResource):
    # Always `{}` in the seed's sample: a computed field, not a model column.
    _extra = fields.DictField(attribute=None, default=dict, readonly=True)
    bulk_email = fields.ToOneField(BulkEmailResource, "bulk_email", null=True)
    send_email = fields.ToOneField(SendEmailResource, "send_email", null=True)
    event_json = fields.DictField(attribute="event_json", default=dict)

    class Meta:
        queryset = MessageEvent.objects.all()
        resource_name = "messageevent"
        allowed_methods = ["get"]
        filtering = {
            "bulk_email": ["exact", "in", "isnull"],
            "send_email": ["exact", "in", "isnull"],
            "event_name": TEXT_FILTERS,
            "event_timestamp": DATE_FILTERS,
        }
        ordering = ["event_timestamp", "id"]

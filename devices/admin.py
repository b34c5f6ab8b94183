"""The operator's UI for devices, their history and API tokens."""

from django.contrib import admin

from devices.models import ApiToken, Device, DeviceRevision

admin.site.register(Device)
admin.site.register(DeviceRevision)
admin.site.register(ApiToken)

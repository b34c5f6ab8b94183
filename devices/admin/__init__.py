"""The operator's console: the device list and pages (saved through the same services as
the API), their actions, and revision history. API tokens are the users app's."""

from devices.admin.device import DeviceAdmin, register_device_actions
from devices.admin.display import STATUS_COLOURS
from devices.admin.outcomes import (
    Outcome,
    PageAction,
    register_page_actions,
    summarise,
)
from devices.admin.profiles import ProfileAdmin
from devices.admin.revisions import DeviceRevisionAdmin

__all__ = [
    "STATUS_COLOURS",
    "DeviceAdmin",
    "DeviceRevisionAdmin",
    "Outcome",
    "PageAction",
    "ProfileAdmin",
    "register_device_actions",
    "register_page_actions",
    "summarise",
]

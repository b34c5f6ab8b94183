"""What the devices domain refuses, as exceptions that know nothing of HTTP.

Services raise these; devices/api/errors.py is the one table that says how each one is
answered (status, the contract's error kind, the message).
"""

from __future__ import annotations


class DeviceError(Exception):
    """A refused operation on one device; `str(error)` is meant for operators."""

    # What `str()` says when no message was given.
    summary = "refused"

    def __init__(self, device_id: str, message: str = "") -> None:
        super().__init__(message or self.summary)
        self.device_id = device_id
        self.message = message


class DeviceNotFound(DeviceError):
    """No device has this id. `message` is advice for the caller, when there is some."""

    summary = "Device not found"


class DeviceExists(DeviceError):
    """A create named a device that is already registered."""

    summary = "Device already exists"


class VersionMismatch(DeviceError):
    """An `If-Match` precondition names a version that is not the current one."""

    def __init__(self, device_id: str, *, if_match: str, current: str | None) -> None:
        found = f"the current version is {current}" if current else "the device does not exist"
        message = f"If-Match {if_match} does not match: {found}"
        if '"' not in if_match and if_match.strip() != "*":
            message += ' (an entity tag is quoted: If-Match: "3")'
        super().__init__(device_id, message)
        self.current = current


class RevisionNotFound(DeviceError):
    def __init__(self, device_id: str, version: int) -> None:
        super().__init__(device_id, f"Device {device_id} has no revision {version}")
        self.version = version


class AddressRefused(DeviceError):
    """An address the server would never contact (outside DEVICE_ALLOWED_NETWORKS)."""


class NoObservedAddress(DeviceError):
    """The device never called the server, so no address was observed."""

    def __init__(self, device_id: str) -> None:
        super().__init__(device_id, "The device has not called GET or PUT /config/{id} yet")


class NoAddress(DeviceError):
    """The device has no IP address, so the server cannot call it."""

    def __init__(self, device_id: str) -> None:
        super().__init__(device_id, "Device has no IP address configured")


class DeviceUnreachable(DeviceError):
    """Calling the device failed: refused, timed out, or its address is not allowed."""


class DeviceBadAnswer(DeviceError):
    """The device answered, but not with what was asked for."""


class ProfileError(Exception):
    """A refused operation on a profile; `str(error)` is meant for operators."""

    summary = "refused"

    def __init__(self, name: str, message: str = "") -> None:
        super().__init__(message or self.summary)
        self.name = name
        self.message = message


class ProfileNotFound(ProfileError):
    summary = "Profile not found"


class InvalidProfile(ProfileError):
    """A profile's name, selector, priority or config that cannot be stored."""


class ProfileStaged(ProfileError):
    """The profile is being rolled out: it changes only through its rollout."""


class LabelsRefused(DeviceError):
    """Labels outside Kubernetes' label syntax (or a reserved key); the message names it."""

"""How the devices domain's exceptions are answered: the one table (registered at start),
and every error kind the device routes answer, declared with its meaning."""

from __future__ import annotations

from devices import exceptions as e
from devices.labels import InvalidSelector
from edgeserver.api.errorkinds import ErrorKind, declare
from edgeserver.api.errors import ApiError

DEVICE_NOT_FOUND = "Device not found"

declare(
    ErrorKind(
        "invalid_device_id",
        400,
        "the device id is not 1-253 letters, digits, `.`, `_`, "
        "`-`, starting with a letter or digit, without `..`",
    ),
    ErrorKind("invalid_device_type", 400, "device_type is not a string of 1-64 characters"),
    ErrorKind("invalid_port", 400, "port or reload_port is not an integer 1-65535"),
    ErrorKind(
        "invalid_ip_address",
        400,
        "ip_address is not an IPv4 or IPv6 literal (or is empty where an address is needed)",
    ),
    ErrorKind(
        "ip_not_allowed",
        400,
        "the address is outside DEVICE_ALLOWED_NETWORKS: the server never contacts it",
    ),
    ErrorKind("ip_address_required", 400, "a create names no ip_address"),
    ErrorKind("invalid_enabled_metrics", 400, "enabled_metrics is not a list of strings or null"),
    ErrorKind("device_id_mismatch", 400, "the body names another device than the path"),
    ErrorKind("invalid_version", 400, "the revision to restore is not a positive integer"),
    ErrorKind(
        "invalid_if_match", 400, "If-Match or If-None-Match is not a list of entity tags (or `*`)"
    ),
    ErrorKind("invalid_filter", 400, "a list filter is empty or not one of its values"),
    ErrorKind(
        "invalid_page",
        400,
        "limit is not an integer 1-1000, or cursor is not a device id",
    ),
    ErrorKind(
        "invalid_label",
        400,
        "a label key or value is outside Kubernetes' label syntax, the labels are not an "
        "object of strings, or a key is reserved (device_type, status, device_id)",
    ),
    ErrorKind(
        "invalid_selector",
        400,
        "`selector` is not a Kubernetes label selector (`k=v`, `k!=v`, `k in (a,b)`, "
        "`k notin (a)`, `k`, `!k`, comma-separated)",
    ),
    ErrorKind("no_observed_ip", 400, "the device never called, so it has no observed address"),
    ErrorKind("No IP address", 400, "the device has no IP address, so it cannot be called"),
    ErrorKind(DEVICE_NOT_FOUND, 404, "no device has this id"),
    ErrorKind("Profile not found", 404, "no profile has this name"),
    ErrorKind(
        "invalid_profile",
        400,
        "a profile's name, selector, priority or config cannot be stored (the message says why)",
    ),
    ErrorKind(
        "rollout_in_progress",
        409,
        "the profile is being rolled out: it changes only through its rollout until that ends",
    ),
    ErrorKind("Revision not found", 404, "the device has no revision of this version"),
    ErrorKind("Device already exists", 409, "a create names a device that exists (use PUT)"),
    ErrorKind(
        "precondition_failed",
        412,
        "If-Match names another version than the current one (the body carries the current `etag`)",
    ),
    ErrorKind("Device error", 502, "the device answered, but not with what was asked for"),
    ErrorKind(
        "Device unreachable",
        503,
        "the device could not be reached (refused, timed out, or outside DEVICE_ALLOWED_NETWORKS)",
    ),
)


def _answer(status: int, error: str):
    def mapper(exc: e.DeviceError) -> ApiError:
        return ApiError(status, error, exc.message or None, device_id=exc.device_id)

    return mapper


def _version_mismatch(exc: e.VersionMismatch) -> ApiError:
    return ApiError(
        412, "precondition_failed", exc.message, device_id=exc.device_id, etag=exc.current
    )


def _unreachable(exc: e.DeviceUnreachable) -> ApiError:
    return ApiError(
        503,
        "Device unreachable",
        f"Failed to connect to device: {exc.message}",
        device_id=exc.device_id,
    )


def _profile(status: int, error: str):
    def mapper(exc: e.ProfileError) -> ApiError:
        return ApiError(status, error, exc.message or None, profile=exc.name)

    return mapper


def _invalid_selector(exc: InvalidSelector) -> ApiError:
    return ApiError(400, "invalid_selector", str(exc))


ERRORS = {
    InvalidSelector: _invalid_selector,
    e.LabelsRefused: _answer(400, "invalid_label"),
    e.DeviceNotFound: _answer(404, DEVICE_NOT_FOUND),
    e.DeviceExists: _answer(409, "Device already exists"),
    e.VersionMismatch: _version_mismatch,
    e.RevisionNotFound: _answer(404, "Revision not found"),
    e.AddressRefused: _answer(400, "ip_not_allowed"),
    e.NoObservedAddress: _answer(400, "no_observed_ip"),
    e.NoAddress: _answer(400, "No IP address"),
    e.DeviceUnreachable: _unreachable,
    e.DeviceBadAnswer: _answer(502, "Device error"),
    e.ProfileNotFound: _profile(404, "Profile not found"),
    e.InvalidProfile: _profile(400, "invalid_profile"),
    e.ProfileStaged: _profile(409, "rollout_in_progress"),
}

"""Writing a device's labels (devices.labels says what a label is).

Labels are not served config: `GET /config/{id}` does not show them, so a change itself
bumps no config version and writes no config revision. They are what selectors, the
scrape targets and the device's Kubernetes Service read, and what profiles match: when a
change makes other profiles match, the device is re-layered (devices.layering: a revision
noted so, and a reload).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.utils import timezone

from devices.exceptions import DeviceNotFound, LabelsRefused
from devices.labels import InvalidLabel, validate_labels
from devices.layering import devices_relayer
from devices.models import Device, DeviceHealth
from devices.services import locked_device
from edgeserver.db import write_transaction
from users.actors import Actor

logger = logging.getLogger(__name__)


def _publication_changed(device: Device) -> None:
    """Ask the monitor to look at the device now: its Kubernetes Service carries the
    labels, and the monitor's listeners (the auto-sync) hear of the change after a probe."""
    now = timezone.now()
    if not DeviceHealth.objects.filter(pk=device.pk).update(probe_requested_at=now):
        DeviceHealth.objects.create(device=device, probe_requested_at=now)


def device_labels_set(*, device_id: str, labels: Mapping[str, str], actor: Actor) -> Device:
    """`PUT /devices/{id}/labels`: replace the device's whole label set (`{}` clears it).

    Raises LabelsRefused (naming the first bad key or value) before anything is read, and
    DeviceNotFound; setting the labels a device has changes nothing.
    """
    try:
        wanted = validate_labels(labels)
    except InvalidLabel as exc:
        raise LabelsRefused(device_id, str(exc)) from exc
    with write_transaction():
        device = locked_device(device_id)
        if device is None:
            raise DeviceNotFound(device_id)
        if device.labels == wanted:
            return device
        previous, device.labels = device.labels, wanted
        device.save(update_fields=["labels"])
        _publication_changed(device)
    logger.info(
        "Labels of %s set by %s (%s): %s (were %s)",
        device_id,
        actor.name,
        actor.source,
        wanted or "none",
        previous or "none",
    )
    if devices_relayer(device_ids=[device_id], actor=actor, note="labels changed"):
        device.refresh_from_db()
    return device

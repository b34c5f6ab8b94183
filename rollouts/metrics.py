"""Rollouts in `/metrics`: every rollout by status, and the devices of each running or
paused one by state, read from the database at scrape time so every replica says the same
(a section of the text format: edgeserver.metrics.register_text_section)."""

from __future__ import annotations


def rollouts_text() -> str:
    from edgeserver.metrics import family_text, label_pairs
    from rollouts.selectors import active_device_counts, status_counts

    by_status = [(label_pairs(status=s), n) for s, n in status_counts().items()]
    devices = [
        (label_pairs(rollout_id=str(r.pk), profile=r.profile_name, state=state), n)
        for r, counts in active_device_counts()
        for state, n in counts.items()
    ]
    return family_text("ems_rollouts", "Staged rollouts, by status", by_status) + family_text(
        "ems_rollout_devices",
        "Devices of each running or paused rollout, by their state in it",
        devices,
    )

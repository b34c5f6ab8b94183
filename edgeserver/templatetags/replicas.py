"""`{% leader_status %}`: which replica leads, on the admin home."""

from __future__ import annotations

import logging
from typing import Any

from django import template

from edgeserver.leadership import build_elector, election_mode, identity
from edgeserver.runstate import LeaderState

logger = logging.getLogger(__name__)
register = template.Library()


@register.inclusion_tag("admin/edgeserver/leader_status.html")
def leader_status() -> dict[str, Any]:
    mode = election_mode()
    this = identity()
    try:
        holder = build_elector(mode).holder()
        problem = ""
    except Exception as exc:  # the API server or the database does not answer
        logger.warning("Could not tell who leads: %s", exc)
        holder, problem = None, str(exc)
    return {
        "mode": mode,
        "holder": holder,
        "this_replica": this,
        "this_leads": LeaderState.of_this_server().read() or (holder == this),
        "problem": problem,
    }

"""The credentials that may call the API."""

from __future__ import annotations

from django.db import models

from users.choices import TokenKind


class ApiToken(models.Model):
    """A bearer credential. Only its SHA-256 digest is stored; the token is shown once."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=TokenKind.choices)
    device_id = models.CharField(
        max_length=253, blank=True, default="", help_text="Device tokens: the only id they may use"
    )
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token")
    digest = models.CharField(max_length=64, unique=True)
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        scope = f" for {self.device_id}" if self.kind == TokenKind.DEVICE else ""
        return f"{self.name} ({self.kind}{scope}, {self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

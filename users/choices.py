"""Enumerations of who calls the server and who changes what."""

from django.db import models


class TokenKind(models.TextChoices):
    OPERATOR = "operator", "Operator"
    DEVICE = "device", "Device"


# Not a stored token kind: ENROLLMENT_TOKENS come from the settings only.
ENROLLMENT = "enrollment"


class ChangeSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    DEVICE = "device", "Device"

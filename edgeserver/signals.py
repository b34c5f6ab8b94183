"""Signals of the server's life that apps may act on."""

from django.dispatch import Signal

# Sent once by the gunicorn master before it forks workers, with Django set up. A receiver
# may return a line for the operator (printed on stdout), e.g. a bootstrap credential.
server_starting = Signal()

"""Routes of the Kubernetes bridge (filled by the Kubernetes bridge work)."""

urlpatterns: list = []

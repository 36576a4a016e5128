"""The releases domain: release tables, the service, the builder and its worker, download log."""

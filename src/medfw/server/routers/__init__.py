"""The routers of the fleet server; :func:`medfw.server.app.create_app` includes each one once.

* :mod:`.health` — ``/healthz`` (liveness)
* :mod:`.device` — the device API (``Authorization: Device <id>:<secret>``)
* :mod:`.tuf` — TUF metadata and targets (public, read-only)
* :mod:`.management` — the management API (``Authorization: Bearer <token>``)
"""

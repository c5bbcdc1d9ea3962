"""The OTA fleet server: devices, releases, staged rollouts and reports behind a FastAPI application.

Modules (imported on use):

* :mod:`medfw.server.app` — :func:`~medfw.server.app.create_app`: one ``include_router`` per router
* :mod:`medfw.server.routers` — ``health``, ``device`` (device API), ``tuf`` (metadata/targets), ``management``
* :mod:`medfw.server.deps` — dependencies every router uses: the service, the repository, device/token auth
* :mod:`medfw.server.http` — the one mapping of domain errors (:mod:`medfw.server.errors`) to HTTP statuses
* :mod:`medfw.server.service` (+ ``polls``, ``base``, ``rollouts``) — :class:`~medfw.server.service.FleetService`:
  the rules, each change one unit of work (:mod:`medfw.server.work`) with its audit events; returns the frozen
  dataclasses of :mod:`medfw.server.views`
* :mod:`medfw.server.store`, :mod:`medfw.server.store_rollouts` — every SQL statement
* :mod:`medfw.server.cache` — the per-process poll cache; :mod:`medfw.server.maintenance` — the background task
* :mod:`medfw.server.rollout` — the pure rollout rules (phases, eligibility, advance/pause)
* :mod:`medfw.server.credentials` — device credentials and API tokens, stored hashed
* :mod:`medfw.server.models`, :mod:`medfw.server.db`, ``migrations/`` — SQLAlchemy tables, engines, Alembic
* :mod:`medfw.server.asgi` — building the app from settings (``medfw ota serve``, uvicorn workers)
* :mod:`medfw.server.client` — a client of the management API (operator CLI)

The server assigns releases; it never signs them. It holds only the online TUF keys (snapshot, timestamp).
"""

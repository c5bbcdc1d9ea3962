"""The OTA fleet server: devices, releases, staged rollouts and reports behind a FastAPI application.

Modules (imported on use):

* :mod:`medfw.server.app` — :func:`~medfw.server.app.create_app`, the HTTP API
* :mod:`medfw.server.asgi` — building the app from settings (``medfw ota serve``, uvicorn workers)
* :mod:`medfw.server.service` — :class:`~medfw.server.service.FleetService`, every fleet operation and its audit event
* :mod:`medfw.server.rollout` — the pure rollout rules (phases, eligibility, advance/pause)
* :mod:`medfw.server.credentials` — device credentials and API tokens, stored hashed
* :mod:`medfw.server.models`, :mod:`medfw.server.db`, ``migrations/`` — SQLAlchemy tables, engines, Alembic
* :mod:`medfw.server.client` — a client of the management API (operator CLI)

The server assigns releases; it never signs them. It holds only the online TUF keys (snapshot, timestamp).
"""

"""Console pages: rollouts (list, detail with live progress, pause/resume/cancel, create with per-field errors)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from medfw.errors import MedfwError
from medfw.server import rollout as rules
from medfw.server.console.web import Console
from medfw.server.credentials import Role
from medfw.server.errors import NotFound
from medfw.server.schemas import RolloutCreate

__all__ = ["routes"]

_ACTIONS = ("pause", "resume", "cancel")
_SPLIT = re.compile(r"[\s,]+")
_FIELDS = ("release", "name", "group", "devices", "version", "phases", "success_threshold", "error_threshold")


def _parse_form(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The form as a ``RolloutCreate`` body, and a message per field that is wrong."""
    values = {k: str(form.get(k, "")).strip() for k in _FIELDS}
    body: dict[str, Any] = {
        "release": int(values["release"]) if values["release"].isdigit() else values["release"],
        "name": values["name"] or None,
        "group": values["group"] or None,
        "devices": [d for d in _SPLIT.split(values["devices"]) if d] or None,
        "version": values["version"] or None,
        "phases": [p for p in _SPLIT.split(values["phases"]) if p],
    }
    errors: dict[str, str] = {}
    for name in ("success_threshold", "error_threshold"):
        try:
            body[name] = int(values[name])
        except ValueError:
            errors[name] = "a whole number from 1 to 100"
    if not values["release"]:
        errors["release"] = "choose a release"
    if body["phases"]:  # the rollout rules' own message first (it names the bad spec)
        try:
            rules.parse_phases(body["phases"])
        except MedfwError as e:
            errors["phases"] = e.message
    # every field is checked, so all the messages come back at once
    probe = {**body, "release": body["release"] or 0}
    probe.update({k: 50 for k in ("success_threshold", "error_threshold") if k in errors})
    try:
        RolloutCreate.model_validate(probe)
    except ValidationError as e:
        for err in e.errors():
            loc = str(err["loc"][0]) if err.get("loc") else "release"
            errors.setdefault(loc if loc in _FIELDS else "release", str(err.get("msg", "invalid")))
    return body, errors


def _form_page(
    c: Console, request: Request, viewer: Any, *, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    return c.render(
        request,
        "rollout_new.html",
        viewer,
        title="New rollout",
        releases=c.service.releases(),
        groups=c.fleet().groups,
        values=values,
        errors=errors,
        status=status,
    )


def routes(c: Console) -> APIRouter:
    """The rollout routes."""
    r = APIRouter(include_in_schema=False)

    @r.get("/rollouts")
    def rollouts(
        request: Request,
        state: Annotated[str, Query(max_length=16)] = "",
        page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    ) -> Response:
        viewer = c.viewer(request)
        if state and state not in set(rules.RolloutState):
            state = ""
        rows, pages = c.service.rollout_summaries(state=state, page=page)
        return c.render(
            request,
            "rollouts.html",
            viewer,
            title="Rollouts",
            rows=rows,
            state=state,
            states=list(rules.RolloutState),
            page=min(page, pages),
            pages=pages,
        )

    @r.get("/rollouts/new")
    def new_rollout(request: Request) -> Response:
        viewer = c.viewer(request, Role.OPERATOR)
        defaults = {"phases": "10% 100%", "success_threshold": "90", "error_threshold": "10"}
        return _form_page(c, request, viewer, values=defaults, errors={})

    @r.post("/rollouts/new")
    async def create_rollout(request: Request) -> Response:
        viewer, form = await c.form(request, Role.OPERATOR)
        values = {k: str(form.get(k, ""))[:4096] for k in _FIELDS}
        body, errors = _parse_form(form)
        if not errors:
            try:
                created = await run_in_threadpool(c.service.create_rollout, **body, actor=viewer.actor)
            except MedfwError as e:
                where = e.field if e.field in _FIELDS else ("group" if e.field == "target" else "release")
                errors[where] = e.message
            else:
                return RedirectResponse(f"/rollouts/{created.id}", status_code=303)
        return await run_in_threadpool(_form_page, c, request, viewer, values=values, errors=errors, status=422)

    @r.get("/rollouts/{rollout_id}")
    def rollout(request: Request, rollout_id: int) -> Response:
        viewer = c.viewer(request)
        ro = c.service.rollout_header(rollout_id)
        progress = c.service.rollout_progress(rollout_id, len(ro.phases))
        return c.render(
            request,
            "rollout.html",
            viewer,
            title=f"Rollout {ro.id}",
            ro=ro,
            p=progress,
            reports=c.service.reports(rollout_id=rollout_id, limit=20),
            actions=_allowed(ro.state),
        )

    @r.get("/live/rollouts/{rollout_id}")
    def rollout_live(request: Request, rollout_id: int, phases: Annotated[int, Query(ge=1, le=20)]) -> Response:
        viewer = c.viewer(request)
        progress = c.service.rollout_progress(rollout_id, phases)
        return c.render(request, "_rollout_live.html", viewer, p=progress, rollout_id=rollout_id, phase_count=phases)

    @r.post("/rollouts/{rollout_id}/{action}")
    async def control(request: Request, rollout_id: int, action: str) -> Response:
        viewer, _form = await c.form(request, Role.OPERATOR)
        if action not in _ACTIONS:
            raise NotFound(f"unknown rollout action {action!r}")
        await run_in_threadpool(c.service.control_rollout, rollout_id, action, actor=viewer.actor)
        return RedirectResponse(f"/rollouts/{rollout_id}", status_code=303)

    return r


def _allowed(state: str) -> tuple[str, ...]:
    if state == rules.RolloutState.RUNNING:
        return ("pause", "cancel")
    if state == rules.RolloutState.PAUSED:
        return ("resume", "cancel")
    return ()

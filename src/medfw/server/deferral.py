"""Clinical deferral in the fleet service: maintenance windows, on-device approval, what a poll answer carries.

* A group may have a maintenance window (:mod:`medfw.server.windows`); outside it a unit of that group is handed no
  install (its assignment stays ``pending``), and the poll answer says when the window opens. Such answers depend
  on the clock and are never cached.
* A rollout may require the user's approval on the unit: its assignments carry ``approval_required`` and the agent
  defers (``awaiting_approval``) until the user approved that release on the unit.
* A busy unit (therapy running) reports ``deferred`` / ``device_busy``: its assignment stays active, retried later,
  never counted as a failure.

Rollout status shows all of it (:meth:`DeferralOps.rollout_trust`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from medfw.errors import ConfigError
from medfw.server.campaigns import CampaignOps
from medfw.server.models import Assignment, Device
from medfw.server.polls import VOLATILE
from medfw.server.trust_errors import invalid, not_found
from medfw.server.trust_models import GroupWindow, RolloutOptions, RotationCampaign
from medfw.server.windows import Window, parse_window

__all__ = ["DeferralOps"]


def _window(row: GroupWindow) -> Window:
    return Window(row.timezone, tuple(row.days), row.start, row.end)


class DeferralOps(CampaignOps):
    """Maintenance windows, approval-required rollouts, and the poll-answer additions of device trust."""

    def set_window(
        self, group: str, *, timezone: str, days: Sequence[str], start: str, end: str, actor: str
    ) -> dict[str, Any]:
        """Set a group's maintenance window (a window that never opens is refused, audited)."""
        try:
            window = parse_window(timezone, days, start, end)
        except ConfigError as e:
            self._event(
                "config.change",
                "denied",
                actor,
                reason="window_refused",
                objects={"group": group},
                data={"detail": e.message},
            )
            raise invalid(e.message, field=e.field) from None
        with self.work() as w:
            row = w.session.get(GroupWindow, group)
            if row is None:
                w.session.add(
                    GroupWindow(
                        group=group,
                        timezone=window.timezone,
                        days=list(window.days),
                        start=window.start,
                        end=window.end,
                    )
                )
            else:
                row.timezone, row.days, row.start, row.end = (
                    window.timezone,
                    list(window.days),
                    window.start,
                    window.end,
                )
            w.changed = True
            w.audit(
                "config.change",
                "success",
                actor,
                objects={"group": group},
                data={"action": "window", **window.to_dict()},
            )
        return {"group": group, **window.to_dict()}

    def clear_window(self, group: str, *, actor: str) -> None:
        """Remove a group's maintenance window (installs may be assigned at any time)."""
        with self.work() as w:
            row = w.session.get(GroupWindow, group)
            if row is None:
                raise not_found(f"group {group} has no maintenance window")
            w.session.delete(row)
            w.changed = True
            w.audit("config.change", "success", actor, objects={"group": group}, data={"action": "window_clear"})

    def windows(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Every group window, whether it is open now and when it opens next."""
        t = now or dt.datetime.now(dt.UTC)
        with self.sessions() as s:
            rows = list(s.scalars(select(GroupWindow).order_by(GroupWindow.group)))
        out = []
        for r in rows:
            win = _window(r)
            out.append(
                {"group": r.group, **win.to_dict(), "open": win.is_open(t), "next_open": win.next_open(t).isoformat()}
            )
        return out

    def poll_extras(self, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Withhold an install outside the unit's maintenance window, flag approval, add the rotation step."""
        assignment = body.get("assignment")
        with self.sessions() as s:
            win_row = s.scalar(
                select(GroupWindow).join(Device, Device.group == GroupWindow.group).where(Device.id == device_id)
            )
            options = s.get(RolloutOptions, assignment["rollout"]) if assignment else None
            window = _window(win_row) if win_row is not None else None
        if window is not None:
            body[VOLATILE] = True
            now = dt.datetime.now(dt.UTC)
            if assignment and not window.is_open(now):
                body["assignment"] = None
                body["deferred"] = {"reason": "maintenance_window", "next_open": window.next_open(now).isoformat()}
                assignment = None
        if assignment and options is not None and options.require_approval:
            body["assignment"] = {**assignment, "approval_required": True}
        rotation = self.rotation_instruction(device_id)
        if rotation is not None:
            body["key_rotation"] = rotation
        return body

    def set_rollout_approval(self, w: Any, rollout_id: int, require_approval: bool) -> None:
        """Record inside the rollout's own unit of work that its installs need the user's approval on the unit."""
        if require_approval:
            w.session.add(RolloutOptions(rollout_id=rollout_id, require_approval=True, campaign_id=None))

    def rollout_trust(self, rollout_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
        """Deferrals, unverified confirmations, approval, windows and campaign of a rollout (for its status)."""
        t = now or dt.datetime.now(dt.UTC)
        with self.sessions() as s:
            options = s.get(RolloutOptions, rollout_id)
            deferred = Counter(
                dict(
                    s.execute(
                        select(Assignment.reason, func.count())
                        .where(Assignment.rollout_id == rollout_id, Assignment.state == "deferred")
                        .group_by(Assignment.reason)
                    ).all()
                )
            )
            groups = Counter(
                dict(
                    s.execute(
                        select(Device.group, func.count())
                        .join(Assignment, Assignment.device_id == Device.id)
                        .where(
                            Assignment.rollout_id == rollout_id,
                            Assignment.state.in_(["pending", "waiting", "deferred"]),
                        )
                        .group_by(Device.group)
                    ).all()
                )
            )
            wins = {
                r.group: _window(r) for r in s.scalars(select(GroupWindow).where(GroupWindow.group.in_(list(groups))))
            }
            campaign = s.scalar(select(RotationCampaign.id).where(RotationCampaign.rollout_id == rollout_id))
        closed = {g: n for g, n in groups.items() if g in wins and not wins[g].is_open(t)}
        return {
            "require_approval": bool(options and options.require_approval),
            "deferred": {str(k): v for k, v in deferred.items()},
            "outside_window": closed,
            "windows": {
                g: {**w.to_dict(), "open": w.is_open(t), "next_open": w.next_open(t).isoformat()}
                for g, w in wins.items()
            },
            "campaign": campaign,
        }

"""Sync endpoints: terminals push events and pull reference data; admins order a full resync."""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from mobile_api import signals
from mobile_api.contracts.sync import PULL_PATH, PUSH_PATH, PullResponse, PushRequest, PushResponse
from mobile_api.gates import hooks_of
from mobile_api.sync import services
from mobile_api.sync.schemas import ResyncOrdered, ResyncRequest
from mobile_api.web import ADMINS, OFFICER_ON_TERMINAL, AreaContext
from server.core.auth import Principal
from server.core.errors import Conflict

# A batch is first applied as new; one holding replays is applied again looking them up; a
# concurrent push creating the same case makes a third attempt find that case.
PUSH_ATTEMPTS = 3


class SyncController(Controller):
    tags = ["sync"]

    @post(
        PUSH_PATH,
        opt=OFFICER_ON_TERMINAL,
        status_code=200,
        summary="Push a batch of case events (officer on an enrolled terminal, DPoP)",
    )
    async def push(
        self, data: JSONBody[PushRequest], state: State, principal: NamedDependency[Principal]
    ) -> PushResponse:
        context: AreaContext = state.context
        keyring = await context.keyring()
        calendar = await context.calendar()
        hooks = hooks_of(state)
        look_up_replays = False
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            now = context.clock.now()
            try:
                async with context.database.transaction() as session:
                    outcome = await services.push(
                        session,
                        keyring,
                        calendar,
                        principal,
                        data.events,
                        now,
                        look_up_replays=look_up_replays,
                        hooks=hooks,
                    )
                break
            except services.ReplaysInBatch:
                look_up_replays = True  # a terminal re-sending after a crash: answer from storage
            except Conflict as exc:
                if type(exc) is not Conflict or attempt == PUSH_ATTEMPTS:
                    raise
        await signals.decision_made(outcome.decisions)
        await hooks.served(outcome.served)
        return PushResponse(results=outcome.results, server_time=now)

    @get(
        PULL_PATH,
        opt=OFFICER_ON_TERMINAL,
        summary="Reference data changed since the cursor, as complete snapshots per kind",
    )
    async def pull(
        self,
        state: State,
        principal: NamedDependency[Principal],
        cursor: FromQuery[str] = "",
        ack_resync: FromQuery[uuid.UUID | None] = None,
    ) -> PullResponse:
        context: AreaContext = state.context
        calendar = await context.calendar()
        async with context.database.transaction() as session:
            return await services.pull(
                session,
                calendar,
                principal,
                cursor=cursor,
                ack_resync=ack_resync,
                now=context.clock.now(),
            )

    @post(
        "/api/sync/resync-orders",
        opt=ADMINS,
        status_code=201,
        summary="Order terminals of the own agency to resync fully (all of them if none named)",
    )
    async def order_resync(
        self, data: JSONBody[ResyncRequest], state: State, principal: NamedDependency[Principal]
    ) -> ResyncOrdered:
        context: AreaContext = state.context
        async with context.database.transaction() as session:
            orders = await services.order_resync(
                session,
                await context.keyring(),
                principal,
                terminal_ids=data.terminal_ids,
                reason=data.reason,
                now=context.clock.now(),
            )
        return ResyncOrdered(
            orders=[order.id for order in orders], terminals=[order.terminal_id for order in orders]
        )

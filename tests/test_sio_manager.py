"""server/sio_manager.py leaves python-socketio's bookkeeping exactly as the stock
manager does, without scanning every room: same operations on both, same state."""

from __future__ import annotations

import socketio

from server.sio_manager import DirectDisconnectManager

NS = "/chat"


def _state(mgr: socketio.AsyncManager) -> tuple[object, ...]:
    rooms = {ns: {r: dict(m) for r, m in rs.items()} for ns, rs in mgr.rooms.items()}
    return rooms, dict(mgr.pending_connect), dict(mgr.pending_disconnect), dict(mgr.callbacks)


async def _drive(mgr: socketio.AsyncManager) -> list[tuple[object, ...]]:
    server = socketio.AsyncServer(client_manager=mgr, namespaces=[NS])
    ids = iter(f"sid{i}" for i in range(100))
    server.eio.generate_id = lambda: next(ids)
    states = []
    sids = [await mgr.connect(f"eio{i}", NS) for i in range(5)]
    pending = await mgr.pre_connect("eio9", NS)  # connecting, not yet accepted
    await mgr.enter_room(sids[1], NS, "extra")
    await mgr.enter_room(sids[2], NS, "extra")
    mgr.callbacks[sids[1]] = {1: print}
    states.append(_state(mgr))
    await mgr.disconnect(sids[1], NS)
    states.append(_state(mgr))
    await mgr.disconnect(pending, NS)
    await mgr.disconnect(sids[0], NS)
    states.append(_state(mgr))
    await mgr.leave_room(sids[2], NS, "extra")
    for sid in sids[2:]:
        await mgr.disconnect(sid, NS)
    await mgr.disconnect("never-connected", NS)
    states.append(_state(mgr))
    return states


async def test_same_state_as_the_stock_manager() -> None:
    ours = DirectDisconnectManager()
    assert await _drive(ours) == await _drive(socketio.AsyncManager())
    assert ours.rooms == {} and ours.other_rooms == {}

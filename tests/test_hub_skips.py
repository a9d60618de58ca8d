"""``Hub.skip_if``: a resumed session does not get again, live, what its replay wrote
(on a Redis Cluster a direct message's live copy can arrive after the replay)."""

from __future__ import annotations

from engineio import packet as eio_packet

from server.hub import Hub
from server.wire import envelope, event_packet


def message(seq: int) -> str:
    return envelope("", event_packet("message", f'{{"seq":{seq},"content":"m{seq}"}}'))


def seq_of(text: str) -> int:
    return int(text.split('"seq":')[1].split(",")[0])


async def test_a_listener_skips_what_its_test_accepts_until_it_stops_listening() -> None:
    written: list[tuple[str, str]] = []

    def enqueue(eio_sid: str, pkt: eio_packet.Packet) -> bool:
        written.append((eio_sid, pkt.data))
        return True

    hub = Hub(enqueue, {})
    for sid in ("a", "b"):
        hub.add_session(sid, "eio-" + sid)
        await hub.listen("user:bob", sid)
    hub.skip_if("user:bob", "a", lambda payload: seq_of(payload) == 1)

    hub.deliver("user:bob", message(1))
    hub.deliver("user:bob", message(2))
    received = {sid: [seq_of(t) for s, t in written if s == sid] for sid in ("eio-a", "eio-b")}
    assert received == {"eio-a": [2], "eio-b": [1, 2]}

    # Listening again starts clean: the test went with the old listener.
    written.clear()
    await hub.unlisten("user:bob", "a")
    await hub.listen("user:bob", "a")
    hub.deliver("user:bob", message(1))
    assert sorted(sid for sid, _ in written) == ["eio-a", "eio-b"]

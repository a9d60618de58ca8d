"""dino's protocol verbs as used by the tool (README "Protocol").

Each function sends one request with an ack id and checks the envelope
(``status_code`` 200), raising ClientError with the server's message otherwise.
"""

from __future__ import annotations

from typing import Any

from loadtest.client import ClientError, SioClient


def _data(event: str, response: Any) -> Any:
    if not isinstance(response, dict):
        raise ClientError(f"{event}: unexpected response {response!r:.120}")
    code = response.get("status_code")
    if code != 200:
        raise ClientError(f"{event}: status {code}: {response.get('data')!s:.120}")
    return response.get("data")


async def login(client: SioClient, user_id: str, name: str, timeout: float) -> None:
    body = {"verb": "login", "actor": {"id": user_id, "summary": name}}
    _data("login", await client.request("login", body, timeout))


async def create_room(client: SioClient, name: str, timeout: float) -> str:
    """Create a room named ``name``; returns its id."""
    body = {"verb": "create", "target": {"displayName": name}}
    data = _data("create", await client.request("create", body, timeout))
    try:
        return str(data["target"]["id"])
    except (KeyError, TypeError):
        raise ClientError(f"create: no target.id in {data!r:.120}") from None


async def join(client: SioClient, room_id: str, timeout: float) -> int:
    """Join a room; returns the newest seq its join history showed (0 if none).

    Messages up to that seq were stored before the join; everything after it
    must be delivered live.
    """
    body = {"verb": "join", "target": {"id": room_id}}
    data = _data("join", await client.request("join", body, timeout))
    return history_baseline(data)


def history_baseline(join_data: Any) -> int:
    try:
        attachments = join_data["object"]["attachments"]
    except (KeyError, TypeError):
        return 0
    newest = 0
    for part in attachments:
        if isinstance(part, dict) and part.get("objectType") == "history":
            for entry in part.get("attachments") or []:
                seq = entry.get("seq") if isinstance(entry, dict) else None
                if isinstance(seq, int) and seq > newest:
                    newest = seq
    return newest


async def leave(client: SioClient, room_id: str, timeout: float) -> None:
    body = {"verb": "leave", "target": {"id": room_id}}
    _data("leave", await client.request("leave", body, timeout))


def send_to_room(client: SioClient, room_id: str, content: str) -> None:
    """Fire and forget; the outcome arrives as event ``gn_message``."""
    client.emit(
        "message",
        {"verb": "send", "target": {"id": room_id}, "object": {"content": content}},
    )


def send_to_user(client: SioClient, user_id: str, content: str) -> None:
    client.emit(
        "message",
        {
            "verb": "send",
            "target": {"objectType": "user", "id": user_id},
            "object": {"content": content},
        },
    )

"""Load-testing tool for dino (socket.io v5 / engine.io v4 over websocket).

One process holds thousands of clients because each client is a bare asyncio
Protocol speaking RFC 6455 and the engine.io/socket.io framing itself, instead of
a full python-socketio client per user. Run ``python -m loadtest --help``.
"""

__version__ = "0.1.0"

"""The core actions layer: every change of state a node makes, whoever asked for it.

The socket.io namespace (``handlers/``), the HTTP API (``handlers/api/``) and the cluster's
purge of a dead node all call these plain async functions over ``server.node.Node`` with
typed arguments. The actions own every sequence (listen before joining and its rollback,
the announcements to a room) so no entry point spells one again. Errors are the typed
ones of ``core.errors``; each entry point maps them to its own status codes once.
"""

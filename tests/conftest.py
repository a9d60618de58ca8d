"""Fixtures shared by every test module (see ``tests/redis_fixture.py``)."""

from tests.redis_fixture import key_prefix, redis_client, redis_url

__all__ = ["key_prefix", "redis_client", "redis_url"]

"""Haku (registration): adapter, field mapping and simulator."""

from racehub.providers.haku.client import HakuAdapter

__all__ = ["HakuAdapter"]

"""Copernico / Timingsense (timing/scoring): adapter, field mapping, webhook payload and
simulator."""

from racehub.providers.copernico.client import CopernicoAdapter

__all__ = ["CopernicoAdapter"]

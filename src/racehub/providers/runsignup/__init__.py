"""RunSignUp (registration): adapter, field mapping and simulator."""

from racehub.providers.runsignup.client import RunSignUpAdapter

__all__ = ["RunSignUpAdapter"]

"""Every domain's models (declared in racehub.domains), so Alembic and the tests see the
whole schema."""

from racehub import domains
from racehub.db.base import Base

domains.load_models()

__all__ = ["Base"]

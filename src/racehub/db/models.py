"""Import every domain's models so Alembic and the tests see the whole schema."""

from racehub.core import models as core_models  # noqa: F401
from racehub.db.base import Base
from racehub.events import models as events_models  # noqa: F401
from racehub.exports import models as exports_models  # noqa: F401
from racehub.imports import models as imports_models  # noqa: F401
from racehub.inventory import models as inventory_models  # noqa: F401
from racehub.jobs import models as jobs_models  # noqa: F401
from racehub.providers import models as providers_models  # noqa: F401
from racehub.sync import models as sync_models  # noqa: F401
from racehub.timing import models as timing_models  # noqa: F401

__all__ = ["Base"]

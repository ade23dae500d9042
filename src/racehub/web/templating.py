"""One Jinja environment over every domain's ``templates/`` folder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

PACKAGE_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = Path(__file__).resolve().parent / "static"


def _template_dirs() -> list[str]:
    dirs = [str(Path(__file__).parent / "templates")]
    dirs += sorted(str(p) for p in PACKAGE_DIR.glob("*/templates") if p.parent.name != "web")
    return dirs


def _local(value: datetime | None, tz: str | None = None) -> str:
    if value is None:
        return ""
    if tz:
        value = value.astimezone(ZoneInfo(tz))
    return value.strftime("%Y-%m-%d %H:%M")


def _csrf(request: Request) -> str:
    return str(getattr(request.state, "csrf_token", ""))


templates = Jinja2Templates(directory=_template_dirs()[0])
templates.env.loader = ChoiceLoader([FileSystemLoader(d) for d in _template_dirs()])
templates.env.filters["local"] = _local
templates.env.globals["csrf_token"] = _csrf
templates.env.autoescape = True


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"

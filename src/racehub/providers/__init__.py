"""Provider adapters: one contract (``base.py``), one HTTP layer (``http.py``), one shared
request budget (``ratelimit.py``) and a registry of providers (``registry.py``); each
provider has a sub-package with ``client.py`` (wire format), ``mapping.py`` (fields) and
``simulator.py`` (a Starlette test server speaking its shapes)."""

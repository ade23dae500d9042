"""Alerts: rules evaluated every minute over every tenant, notices by e-mail and a signed
webhook, a top-bar badge and the alerts page (see service.py)."""

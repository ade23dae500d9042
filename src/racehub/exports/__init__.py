"""Async exports of list views (CSV/XLSX) with progress, snapshot, storage and expiry."""

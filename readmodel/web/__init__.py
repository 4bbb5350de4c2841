"""HTTP: the JSON API, CSV exports, SSE and the dashboard pages."""

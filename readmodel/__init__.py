"""The read side: `smstally api` (read model, HTTP API, live dashboard)."""

"""Operator clients: read the output topics (stats view, topic reader, publisher) and render
the text report. They talk to the broker as any consumer would; the worker never imports them."""

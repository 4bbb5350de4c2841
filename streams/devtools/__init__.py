"""Development and demo tools: the embedded broker launcher, child processes, the demo and
the traffic simulator. Nothing here runs in a production deployment."""

"""Stand-in servers for the platforms OpenPrimary talks to, for tests and benchmarks."""

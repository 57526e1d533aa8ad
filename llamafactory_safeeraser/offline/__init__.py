"""Offline fixtures: tiny models built from a config (one module per family) and a synthetic benchmark in
the SafeEraser format. Tests, benchmarks and the CPU demo use them; nothing here downloads."""

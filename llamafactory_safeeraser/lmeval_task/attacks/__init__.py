"""Attacks on the SafeEraser tasks: the catalog (``catalog``), the attack modules, the attacked documents."""

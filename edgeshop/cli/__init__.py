"""Console entry points: one module per command, each ``main(argv=None) -> int``.

Heavy imports happen inside ``main`` after argument parsing, so ``--help`` is instant
and a missing extra is reported as one line, not a traceback.
"""

"""The `launch` command line. Thin: parse, call, render. Heavy imports stay inside commands."""

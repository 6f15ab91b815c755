"""The watchdog: power-cycle a wedged node, never a healthy busy one.

probes.py (what is checked), decide.py (the pure decision state machine), loop.py (the loop),
budget.py (budgets, pause file, alerts), journal.py (JSONL + console), restart.py (restart first),
systemd.py (a unit for it), build.py (from an inventory).
"""

"""`twin bench`: measured performance of the twin against bare baselines (GitHub issue 6).

Each benchmark runs ours and its baseline in the same process run, alternating blocks,
and reports the median of several repetitions. See twin/bench/command.py for the CLI.
"""

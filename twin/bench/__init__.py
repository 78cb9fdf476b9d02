"""`twin bench`: measured performance of the twin against bare baselines.

Each benchmark runs ours and its baseline in the same process run, alternating blocks,
and reports the median of several repetitions. See twin/bench/command.py for the CLI. The
benchmarks of the gym envs (`gym_envs.py`) and of sweeps (`sweep_runs.py`) live here too.
May import anything in the twin (it measures all of it); nothing imports it but the CLI.
"""

"""The zoo's scripts, grouped by purpose; run each from the repository root as a module:
``python -m scripts.<group>.<name> [--help]``.

- :mod:`scripts.benchmarks`: timings and counts (``benchmark_*``, ``count_flops``);
- :mod:`scripts.reproductions`: the studies behind the shipped figures and the docs' tables (seed comparisons, the
  noise-robustness table, kill-and-resume trials, fault cases, the results table);
- :mod:`scripts.figures`: pictures and samples from shipped weights (``plot_*``, ``sample_*``, DeepDream, n-grams);
- :mod:`scripts.maintenance`: keeping the repository's generated files current (the docs pages, the manifests).

Not part of the installed ``zoo`` package: a wheel carries none of them.
"""

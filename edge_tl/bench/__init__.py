"""``edge-tl bench``: latency, memory, size, compute and accuracy of every artefact, measured in isolation.

Modules (import what you need; none imports a backend at import time):

- ``stats``: ``percentile``, ``bootstrap_ci``, ``summarize(seconds) -> LatencyStats``, ``noise_reasons``.
- ``env``: ``fingerprint() -> Fingerprint`` (CPU, ISA flags, cores, affinity, versions), ``BusyMeter``.
- ``measure``: ``MeasureJob``, ``run_job(job) -> Measurement`` (one spawned process; the loop is
  ``runtimes.timing.time_loop``, the same one the export budget times with).
- ``flops``: ``complexity(path, format) -> Complexity(params, macs)`` (``register_counter``).
- ``targets``: ``discover``, ``read_card``, ``load_targets``, ``with_runtimes`` (one target per file x runtime),
  ``parse_runtimes``, ``eval_set`` (hygiene-scanned), ``check_classes``, ``for_profile``.
- ``profiles``: ``PROFILES`` (desktop, mobile), ``get_profile``.
- ``runner``: ``run_bench(targets, eval_set, settings, cores) -> BenchResult``, ``plan_threads``.
- ``results``: ``BenchSettings``, ``BenchRow``, ``BenchResult`` (frozen, ``to_json()``), ``recommend``,
  ``pareto_front``, ``PEAK_GFLOPS_PER_CORE``.
- ``format``: ``COLUMNS`` and ``caption`` (the table as plain text; the CLI draws it), ``to_csv``,
  ``to_markdown``; ``plot``: ``plot_latency_accuracy``.

The engine-only call each runtime is timed with lives beside the runtimes: ``edge_tl.runtimes.timing.timed_call``
(the export budget times its candidates with it too).

Nothing here prints or draws progress: ``runner.run_bench`` reports through its ``progress`` callback.
"""

"""Run a placement for real: cut a PyTorch model by device, execute it on workers, compare with the model.

* :mod:`toolchain.runtime.models`: real-weight modules and inputs for zoo names and ``MODULE:FACTORY``;
* :mod:`toolchain.runtime.partition`: cut the exported ATen graph into per-layer segments per
  device (``dnnpart export-partition``), save and load them, run them in one process;
* :mod:`toolchain.runtime.transport`: framed tensor messages over localhost TCP with the
  instance's links emulated on the sender side (bandwidth pacing, propagation latency);
* :mod:`toolchain.runtime.worker`: one worker per device (a process, or a Ray actor);
* :mod:`toolchain.runtime.driver`: start the workers, run the inferences, collect the traces;
* :mod:`toolchain.runtime.report`: predicted (evaluator) versus measured times, Gantt plots;
* :mod:`toolchain.runtime.calibrate`: fit the per-transfer overhead of the links from runs.

The method and its accuracy are described in docs/runtime.md.
"""

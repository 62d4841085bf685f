"""``tracereplay top``: live, per-VM counterfactuals from the host's own ring buffers.

:mod:`.sources` gives raw pages per interval (the live ``trace_pipe_raw`` or a
recorded trace.dat), :mod:`.pages` decodes them with the trace.dat decoder,
:mod:`.engine` runs each interval through the pipeline and keeps the running
sums, :mod:`.discovery` finds VMs and pins without a manifest, :mod:`.view`
draws the table. See docs/LIVE.md.
"""

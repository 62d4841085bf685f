"""The kernel's tracefs binary encodings (trace.dat, perf.data): format files, ring-buffer
pages, tracepoint records decoded into columns."""

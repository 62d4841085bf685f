"""Decoders the readers are built on, grouped by family.

* :mod:`.common`: JSON writers shared by every reader, files and decompression,
  kernel symbols, the table of known events, Arrow column helpers;
* :mod:`.text`: ftrace-style text lines;
* :mod:`.tracefs`: format files, ring-buffer pages and tracepoint records (trace.dat,
  perf.data);
* :mod:`.perf`: perf.data's record stream;
* :mod:`.perfetto`: Perfetto protobuf.
"""

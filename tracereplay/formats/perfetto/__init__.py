"""Perfetto's protobuf traces: wire format, schema, packets, FtraceEvent decoding."""

"""Low-level decoders shared by the readers (text lines, compression, event print formats)."""

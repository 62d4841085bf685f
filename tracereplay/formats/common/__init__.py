"""What every reader shares: JSON writers, files and decompression, kernel symbols, the table
of known events, Arrow column helpers."""

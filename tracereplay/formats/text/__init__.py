"""ftrace-style text (tracefs, trace-cmd report, perf script): line scanning, print-format
templates, args parsing."""

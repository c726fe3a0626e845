"""Report writers: JUnit XML for CI systems, one self-contained HTML page for people."""

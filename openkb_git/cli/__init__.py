"""The command line: Click commands that parse, call one verb, and format the result."""

"""`python -m bench faults`: the fault suite (issue 8). suite.py runs it; stack.py starts the
processes, drive.py places orders over MCP, inject.py holds the faults, checks.py says what broke."""

"""Runs a command and succeeds only when it exits with the given code.

Usage: expect_exit.py CODE COMMAND [ARGS...]. The command's output passes through unchanged; lit's
`not` accepts any failure, this tells exit code 1 (a user error) from 2 (not built) and a crash.
"""
import subprocess
import sys

want = int(sys.argv[1])
got = subprocess.call(sys.argv[2:])
if got != want:
    sys.stderr.write(f"expect_exit.py: expected exit code {want}, got {got}: {' '.join(sys.argv[2:])}\n")
    sys.exit(1)

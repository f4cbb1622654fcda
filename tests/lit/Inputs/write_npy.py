"""Writes a zero-filled .npy file without numpy: write_npy.py PATH DESCR DIM [DIM...]
(DESCR is '<f4' or '<i8')."""
import struct
import sys

path, descr, dims = sys.argv[1], sys.argv[2], [int(d) for d in sys.argv[3:]]
shape = "(" + "".join(f"{d}, " for d in dims).rstrip(" ") + ")" if len(dims) != 1 else f"({dims[0]},)"
header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
header += " " * (-(len(header) + 11) % 64) + "\n"
count = 1
for d in dims:
    count *= d
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(b"\0" * count * (4 if descr == "<f4" else 8))

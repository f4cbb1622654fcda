"""Writes a binary strategy file byte by byte in FlexFlow's 2020 layout, without any protobuf library.

FlexFlow's src/runtime/strategy.proto of 2020-01 (proto2, package FFProtoBuf):
  message Op { required string name = 1; required DeviceType device_type = 2 [default = GPU];
               repeated int32 dims = 3; repeated int32 device_ids = 4;
               repeated MemoryType memory_types = 5; }
  message Strategy { repeated Op ops = 1; }
proto2 writes repeated int32 unpacked: one tag and varint per entry.

Usage: write_flexflow_pb.py OUT NAME:DIMS:DEVICES[:MEMORY_TYPES] ...
  e.g. conv2:2,2,1,1:0,2,1,3 (dims innermost first, as FlexFlow writes them).
"""
import sys


def varint(v):
    v &= (1 << 64) - 1  # negative int32 values are written as 10-byte two's complement varints
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, wire_type):
    return varint(number << 3 | wire_type)


def op(spec):
    parts = spec.split(":")
    name, dims, devices = parts[0], parts[1], parts[2]
    memory = parts[3] if len(parts) > 3 else ""
    body = field(1, 2) + varint(len(name.encode())) + name.encode()
    body += field(2, 0) + varint(0)  # device_type: GPU, written explicitly as FlexFlow did
    for d in filter(None, dims.split(",")):
        body += field(3, 0) + varint(int(d))
    for d in filter(None, devices.split(",")):
        body += field(4, 0) + varint(int(d))
    for m in filter(None, memory.split(",")):
        body += field(5, 0) + varint(int(m))
    return field(1, 2) + varint(len(body)) + body


with open(sys.argv[1], "wb") as f:
    f.write(b"".join(op(s) for s in sys.argv[2:]))

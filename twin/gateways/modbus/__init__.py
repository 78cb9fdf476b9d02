"""`twin modbus`: a Modbus TCP server in front of a running twin; see docs/modbus.md."""

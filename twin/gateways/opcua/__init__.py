"""`twin opcua`: an OPC UA server (asyncua) in front of a running twin; see docs/opcua.md."""

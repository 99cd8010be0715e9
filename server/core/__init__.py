"""server/core"""

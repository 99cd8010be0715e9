"""Contracts shared by the edge agent and the server: messages and the client side of protocols.

Everything here runs on the terminal too, so it imports only the standard library, msgspec and
cryptography: never the server, litestar or the database.
"""

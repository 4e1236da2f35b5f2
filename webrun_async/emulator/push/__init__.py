"""The socket.io push channel."""
